"""A time-ordered file of spectra with sparse lab values, for the prequential evaluation.

One row per spectrum (CSV or Parquet, read by the project's table loader: numeric column names are wavelengths in
nm), a time column, and a target column that is empty where the lab did not measure the sample. A lab value is not
known when its spectrum is measured: it arrives later, after a fixed delay (``lab_delay`` seconds) or at the time a
lab-time column gives. Times are ISO 8601 timestamps or plain numbers (seconds).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from nirstream.core.datasets.tabular import DataFileError, _as_wavelength, read_frame, row_numbers, table_dataset


@dataclass(frozen=True)
class TimeOrderedData:
    """Spectra in time order. ``reference`` and ``lab_times`` are NaN where a spectrum has no lab value;
    ``calibration``: the rows of the calibration part (a plant's data from before the loop is switched on)."""

    X: np.ndarray  # (n, p)
    wavelengths: np.ndarray  # (p,), nm
    times: np.ndarray  # (n,) seconds, non-decreasing
    reference: np.ndarray  # (n,)
    lab_times: np.ndarray  # (n,) seconds, >= times where not NaN
    target: str
    sample_names: tuple[str, ...]
    calibration: np.ndarray  # (n,) bool

    def __post_init__(self) -> None:
        n = self.X.shape[0]
        for name in ("times", "reference", "lab_times", "calibration"):
            if getattr(self, name).shape != (n,):
                raise ValueError(f"{name} has shape {getattr(self, name).shape}, expected ({n},)")
        if np.any(np.diff(self.times) < 0):
            raise ValueError("times must not decrease")
        labelled = np.isfinite(self.reference)
        if not np.array_equal(labelled, np.isfinite(self.lab_times)):
            raise ValueError("every lab value needs a lab time, and only lab values have one")
        if np.any(self.lab_times[labelled] < self.times[labelled]):
            raise ValueError("a lab value cannot arrive before its spectrum was measured")
        if np.any(self.calibration & ~labelled):
            raise ValueError("the calibration part holds lab-referenced spectra only")

    @property
    def labelled(self) -> np.ndarray:
        return np.isfinite(self.reference)

    def with_calibration(self, pairs: int) -> TimeOrderedData:
        """The first ``pairs`` lab-referenced spectra become the calibration part (0: none); the unlabelled spectra
        among them are dropped, since the evaluation starts after the calibration part."""
        labelled = np.flatnonzero(self.labelled)
        if pairs < 0 or pairs > len(labelled) - 1:
            raise ValueError(f"calibration pairs {pairs}: the file has {len(labelled)} lab values, and the "
                             "evaluation needs at least one after the calibration part")
        if pairs == 0:
            return replace(self, calibration=np.zeros(len(self.times), dtype=bool))
        first_evaluated = labelled[pairs - 1] + 1
        keep = np.concatenate([labelled[:pairs], np.arange(first_evaluated, len(self.times))])
        calibration = np.zeros(len(keep), dtype=bool)
        calibration[:pairs] = True
        return TimeOrderedData(self.X[keep], self.wavelengths, self.times[keep], self.reference[keep],
                               self.lab_times[keep], self.target, tuple(self.sample_names[i] for i in keep), calibration)


def _seconds(column: pd.Series, name: str, source: str) -> np.ndarray:
    """Numbers as seconds, or timestamps as seconds since 1970 (UTC); empty cells NaN."""
    if pd.api.types.is_numeric_dtype(column):
        return column.to_numpy(dtype=np.float64)
    parsed = pd.to_datetime(column, utc=True, errors="coerce")
    bad = (parsed.isna() & column.notna()).to_numpy()
    if bad.any():
        raise DataFileError(f"{source}: {name} column {column.name!r} is neither numbers (seconds) nor timestamps "
                            f"in row(s) {row_numbers(bad)}")
    seconds = np.full(len(column), np.nan)
    known = parsed.notna().to_numpy()
    seconds[known] = (parsed[known] - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy()
    return seconds


def load_time_ordered(path: str | Path, time_column: str, *, target: str | None = None, lab_delay: float | None = None,
                      lab_time_column: str | None = None, id_column: str | None = None) -> TimeOrderedData:
    """Read the file (rows put in time order); ``lab_delay`` (seconds) or ``lab_time_column`` says when each lab value
    became known. ``target``: the lab-value column (default: the one numeric non-wavelength column left)."""
    if (lab_delay is None) == (lab_time_column is None):
        raise ValueError("give the lab values' delay (--lab-delay) or their arrival time column (--lab-time-column), one of them")
    path = Path(path)
    frame = read_frame(path)
    spectra = table_dataset(frame, path.name, id_column=id_column, spectra_only=True)
    labels = [c for c in (time_column, lab_time_column, id_column) if c is not None]
    missing = [c for c in [*labels, *([target] if target else [])] if c not in frame.columns]
    if missing:
        raise DataFileError(f"{path.name}: no column(s) {missing}")
    if target is None:
        candidates = [c for c in frame.columns if _as_wavelength(c) is None and c not in labels
                      and pd.api.types.is_numeric_dtype(frame[c])]
        if len(candidates) != 1:
            raise DataFileError(f"{path.name}: name the lab-value column (--target); candidates {candidates}")
        target = str(candidates[0])
    reference = pd.to_numeric(frame[target], errors="coerce").to_numpy(dtype=np.float64)
    if np.isinf(reference).any():
        raise DataFileError(f"{path.name}: infinite lab value in row(s) {row_numbers(np.isinf(reference))}")
    times = _seconds(frame[time_column], "time", path.name)
    if not np.isfinite(times).all():
        raise DataFileError(f"{path.name}: time missing in row(s) {row_numbers(~np.isfinite(times))}")
    labelled = np.isfinite(reference)
    if lab_time_column is not None:
        lab_times = _seconds(frame[lab_time_column], "lab time", path.name)
        if not np.isfinite(lab_times[labelled]).all():
            raise DataFileError(f"{path.name}: lab value without a lab time in row(s) "
                                f"{row_numbers(labelled & ~np.isfinite(lab_times))}")
        early = labelled & (lab_times < times)
        if early.any():
            raise DataFileError(f"{path.name}: lab time before the spectrum's time in row(s) {row_numbers(early)}")
    else:
        lab_times = times + float(lab_delay)
    lab_times = np.where(labelled, lab_times, np.nan)
    order = np.argsort(times, kind="stable")
    return TimeOrderedData(spectra.X[order], spectra.wavelengths, times[order], reference[order], lab_times[order],
                           target, tuple(spectra.sample_names[i] for i in order), np.zeros(len(order), dtype=bool))

