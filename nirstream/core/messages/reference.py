"""Topic ``nirstream.reference``: lab values, keyed by analyzer id, hours after the spectrum.

A lab value names its sample in one of two ways: by ``sample_id`` (the spectrum carried the same id), or, on a
continuous process whose spectra carry no sample id, by ``analyzer_id`` and ``sampled_at`` (when the lab took the
sample): the worker then joins it with that analyzer's spectra around the sampling time.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from nirstream.core.messages.common import SCHEMA_VERSION, AnalyzerId, SchemaVersion, utc_now


class ReferenceMessage(BaseModel):
    """A lab reference value for a sample, published when the lab result arrives (hours later)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: SchemaVersion = SCHEMA_VERSION
    sample_id: str | None = Field(default=None, min_length=1, max_length=128,
                                  description="The sample's id, as the spectrum carried it; absent: joined by time")
    analyzer_id: AnalyzerId | None = None
    values: dict[str, Annotated[float, Field(allow_inf_nan=False)]] = Field(
        description="Target name -> lab value (finite numbers only)", max_length=64)
    measured_at: datetime = Field(default_factory=utc_now, description="When the lab measured (reported) the value")
    sampled_at: datetime | None = Field(
        default=None, description="When the lab took the sample (ISO 8601, UTC if no zone); with analyzer_id, what a "
                                  "lab value without sample_id is joined by")

    @model_validator(mode="after")
    def _names_its_sample(self) -> ReferenceMessage:
        if self.sampled_at is not None and self.sampled_at.tzinfo is None:
            object.__setattr__(self, "sampled_at", self.sampled_at.replace(tzinfo=UTC))
        if self.sample_id is None and (self.analyzer_id is None or self.sampled_at is None):
            raise ValueError("a lab value without sample_id needs analyzer_id and sampled_at (it is joined by the "
                             "analyzer's spectra around its sampling time)")
        return self

    @property
    def join_key(self) -> str:
        """What the lab join knows this sample by: its sample id, or ``<analyzer>@<sampling time, UTC>`` (also the
        sample id and message id of a pair joined by time)."""
        if self.sample_id is not None:
            return self.sample_id
        return f"{self.analyzer_id}@{self.sampled_at.astimezone(UTC).isoformat().replace('+00:00', 'Z')}"


def decode_reference(raw: bytes | None) -> ReferenceMessage:
    """A lab value from the reference topic; ``ValueError`` (pydantic's ``ValidationError``) says why it is not one."""
    return ReferenceMessage.model_validate_json(raw or b"")
