"""Topic ``nirstream.spectra``: one spectrum per message, keyed by analyzer id.

A spectrum travels as a ``SpectrumHeader`` (ids, time, wavelength grid) plus its values.
``SpectrumMessage`` is the JSON form (header fields and ``values`` in one object); the binary
form carries the same header and the values as raw float32 (see ``nirstream.core.messages.codec``).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, model_validator

from nirstream.core.messages.common import SCHEMA_VERSION, AnalyzerId, OptionalLabel, SchemaVersion, WavelengthGrid, utc_now


class SpectrumHeader(BaseModel):
    """Everything about a spectrum except its values."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: SchemaVersion = SCHEMA_VERSION
    analyzer_id: AnalyzerId
    sequence: int = Field(ge=0, description="Per-analyzer counter, increasing")
    message_id: str | None = Field(
        default=None,
        max_length=128,
        description="Unique id; defaults to '<analyzer_id>:<sequence>'. Carried into predictions for de-duplication.",
    )
    timestamp: datetime = Field(default_factory=utc_now, description="Acquisition time (ISO 8601, UTC if no zone)")
    grid: WavelengthGrid
    sample_id: OptionalLabel = None
    batch_id: OptionalLabel = None

    @model_validator(mode="after")
    def _fill_defaults(self) -> SpectrumHeader:
        if self.message_id is None:
            object.__setattr__(self, "message_id", f"{self.analyzer_id}:{self.sequence}")
        if self.timestamp.tzinfo is None:
            object.__setattr__(self, "timestamp", self.timestamp.replace(tzinfo=UTC))
        return self


class SpectrumMessage(SpectrumHeader):
    """JSON form of a spectrum: the header fields plus ``values`` (one per grid channel)."""

    values: list[float] = Field(min_length=1, max_length=100_000)

    @model_validator(mode="after")
    def _check_values(self) -> SpectrumMessage:
        if len(self.values) != self.grid.count:
            raise ValueError(f"values has {len(self.values)} entries but grid.count is {self.grid.count}")
        if not all(map(math.isfinite, self.values)):
            raise ValueError("values contain NaN or infinity")
        return self
