"""Topic ``nirstream.models``: champion and calibration-transfer changes, so that workers hot-swap at once."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from nirstream.core.messages.common import utc_now


# promoted / rolled_back / transfer_published change what workers serve; proposed / rejected are the learning
# loop's gate decisions (a worker re-reads the registry on any event and finds its champion unchanged)
ModelEventType = Literal["promoted", "rolled_back", "transfer_published", "proposed", "rejected"]


class ModelEvent(BaseModel):
    """Announced on the models topic when the champion or an analyzer's transfer changes, so workers hot-swap at once.
    Workers never trust its content: it only tells them to look at the registry now."""

    model_config = ConfigDict(frozen=True)

    event: ModelEventType
    version: str
    registry: str = ""
    reason: str = ""
    at: datetime = Field(default_factory=utc_now)


def encode_model_event(event: ModelEventType, version: str, registry: str, reason: str) -> bytes:
    """A ``ModelEvent`` as the models topic carries it, stamped now."""
    return ModelEvent(event=event, version=version, registry=registry, reason=reason).model_dump_json().encode()
