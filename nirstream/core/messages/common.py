"""What every message shares: the schema version (written here once), analyzer ids, the wavelength grid, UTC time."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from nirstream.core.errors import RejectReason, SpectrumRejected

SCHEMA_VERSION = 1
ANALYZER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"

AnalyzerId = Annotated[str, Field(pattern=ANALYZER_ID_PATTERN, description="Analyzer (instrument) id; the Kafka message key")]
OptionalLabel = Annotated[str | None, Field(default=None, max_length=128)]
SchemaVersion = Annotated[int, Field(ge=SCHEMA_VERSION, le=SCHEMA_VERSION, description="Message schema version")]


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
