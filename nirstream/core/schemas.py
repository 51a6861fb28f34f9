"""Message schemas shared by analyzers, the stream worker and consumers (pydantic v2).

A spectrum travels as a ``SpectrumHeader`` (ids, time, wavelength grid) plus its values.
``SpectrumMessage`` is the JSON form (header fields and ``values`` in one object);
the binary form carries the same header and the values as raw float32 (see ``codec``).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from nirstream.core.errors import RejectReason, SpectrumRejected

SCHEMA_VERSION = 1
ANALYZER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"

AnalyzerId = Annotated[str, Field(pattern=ANALYZER_ID_PATTERN, description="Analyzer (instrument) id; the Kafka message key")]
OptionalLabel = Annotated[str | None, Field(default=None, max_length=128)]


def utc_now() -> datetime:
    return datetime.now(UTC)


class WavelengthGrid(BaseModel):
    """A regular wavelength axis: ``start_nm + i * step_nm`` for ``i < count``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    start_nm: float = Field(gt=0, allow_inf_nan=False, description="First wavelength in nm")
    step_nm: float = Field(gt=0, allow_inf_nan=False, description="Spacing in nm")
    count: int = Field(gt=0, le=100_000, description="Number of channels")

    @classmethod
    def from_wavelengths(cls, wavelengths: np.ndarray, rtol: float = 1e-3) -> WavelengthGrid:
        """Describe an evenly spaced axis; refuse an uneven one (it has no compact form)."""
        wl = np.asarray(wavelengths, dtype=float)
        if wl.ndim != 1 or wl.size < 2:
            raise ValueError("need a 1-D axis with at least two wavelengths")
        step = (wl[-1] - wl[0]) / (wl.size - 1)
        if not np.allclose(np.diff(wl), step, rtol=rtol, atol=0):
            raise ValueError("wavelengths are not evenly spaced")
        return cls(start_nm=float(wl[0]), step_nm=float(step), count=int(wl.size))

    @property
    def end_nm(self) -> float:
        return self.start_nm + (self.count - 1) * self.step_nm

    def wavelengths(self) -> np.ndarray:
        return self.start_nm + self.step_nm * np.arange(self.count, dtype=float)

    def require_match(self, expected: WavelengthGrid, tolerance_nm: float = 0.01) -> None:
        """Raise ``SpectrumRejected(WRONG_GRID)`` unless this grid equals ``expected``."""
        if self.count != expected.count:
            raise SpectrumRejected(
                RejectReason.WRONG_GRID,
                f"grid has {self.count} channels, model expects {expected.count}",
            )
        first = abs(self.start_nm - expected.start_nm)
        last = abs(self.end_nm - expected.end_nm)
        if max(first, last) > tolerance_nm:
            raise SpectrumRejected(
                RejectReason.WRONG_GRID,
                f"grid {self.start_nm:g}-{self.end_nm:g} nm does not match the model's "
                f"{expected.start_nm:g}-{expected.end_nm:g} nm",
            )


class SpectrumHeader(BaseModel):
    """Everything about a spectrum except its values."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = SCHEMA_VERSION
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


class OutlierStatistics(BaseModel):
    """Applicability-domain statistics of one spectrum against the model's training data."""

    model_config = ConfigDict(frozen=True)

    hotelling_t2: float
    q_residual: float
    t2_limit_95: float
    t2_limit_99: float
    q_limit_95: float
    q_limit_99: float
    flag: Literal["ok", "warning", "outlier"] = Field(
        description="ok: inside both 95 % limits; warning: beyond a 95 % limit; outlier: beyond a 99 % limit",
    )


class PredictionTimings(BaseModel):
    model_config = ConfigDict(frozen=True)

    batch_size: int = Field(ge=1)
    queue_ms: float = Field(ge=0, description="Received by the worker until its batch started")
    preprocess_ms: float = Field(ge=0, description="Decode, validation and EMSC, for the whole batch")
    inference_ms: float = Field(ge=0, description="Model call for the whole batch")
    end_to_end_ms: float | None = Field(default=None, description="Spectrum timestamp until prediction (clock skew applies)")


class PredictionMessage(BaseModel):
    """One prediction per valid spectrum, keyed like the spectrum (by analyzer id)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = SCHEMA_VERSION
    analyzer_id: AnalyzerId
    sequence: int = Field(ge=0)
    message_id: str
    sample_id: OptionalLabel = None
    batch_id: OptionalLabel = None
    spectrum_timestamp: datetime
    predicted_at: datetime = Field(default_factory=utc_now)
    model_version: str
    predictions: dict[str, float] = Field(description="Target name -> predicted value")
    units: dict[str, str] = Field(default_factory=dict, description="Target name -> unit")
    outlier: OutlierStatistics | None = None
    timings: PredictionTimings | None = None


# A dead letter must always be publishable: originals above this size travel as a prefix + length + sha256.
DEAD_LETTER_ORIGINAL_LIMIT = 64 * 1024
DEAD_LETTER_PREFIX_BYTES = 4 * 1024


class DeadLetter(BaseModel):
    """A message the worker could not use: why, where it came from, and its original bytes."""

    model_config = ConfigDict(frozen=True)

    schema_version: Literal[1] = SCHEMA_VERSION
    reason: str = Field(description="A RejectReason value")
    detail: str
    source_topic: str
    source_partition: int
    source_offset: int
    key: str | None = None
    original_base64: str = Field(description="The message value as received, base64; only its first "
                                 "DEAD_LETTER_PREFIX_BYTES when original_truncated")
    original_bytes: int = Field(default=0, ge=0, description="Length of the original message value")
    original_sha256: str = Field(default="", description="sha256 of the whole original message value (hex)")
    original_truncated: bool = Field(default=False, description="True when the original was too large to carry whole")
    rejected_at: datetime = Field(default_factory=utc_now)
    worker: str = ""


class ModelEvent(BaseModel):
    """Announced on the models topic when the champion changes, so workers hot-swap at once."""

    model_config = ConfigDict(frozen=True)

    event: Literal["promoted", "rolled_back"]
    version: str
    registry: str = ""
    reason: str = ""
    at: datetime = Field(default_factory=utc_now)


class ReferenceMessage(BaseModel):
    """A lab reference value for a sample, published when the lab result arrives (hours later)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = SCHEMA_VERSION
    sample_id: str = Field(min_length=1, max_length=128)
    analyzer_id: AnalyzerId | None = None
    values: dict[str, Annotated[float, Field(allow_inf_nan=False)]] = Field(
        description="Target name -> lab value (finite numbers only)", max_length=64)
    measured_at: datetime = Field(default_factory=utc_now)
