"""Topic ``nirstream.reference``: lab values, keyed by analyzer id, hours after the spectrum."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from nirstream.core.messages.common import SCHEMA_VERSION, AnalyzerId, SchemaVersion, utc_now


class ReferenceMessage(BaseModel):
    """A lab reference value for a sample, published when the lab result arrives (hours later)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: SchemaVersion = SCHEMA_VERSION
    sample_id: str = Field(min_length=1, max_length=128)
    analyzer_id: AnalyzerId | None = None
    values: dict[str, Annotated[float, Field(allow_inf_nan=False)]] = Field(
        description="Target name -> lab value (finite numbers only)", max_length=64)
    measured_at: datetime = Field(default_factory=utc_now)


def decode_reference(raw: bytes | None) -> ReferenceMessage:
    """A lab value from the reference topic; ``ValueError`` (pydantic's ``ValidationError``) says why it is not one."""
    return ReferenceMessage.model_validate_json(raw or b"")
