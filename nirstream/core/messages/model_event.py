"""Topic ``nirstream.models``: champion changes, so that workers hot-swap at once."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from nirstream.core.messages.common import utc_now


class ModelEvent(BaseModel):
    """Announced on the models topic when the champion changes, so workers hot-swap at once."""

    model_config = ConfigDict(frozen=True)

    event: Literal["promoted", "rolled_back"]
    version: str
    registry: str = ""
    reason: str = ""
    at: datetime = Field(default_factory=utc_now)
