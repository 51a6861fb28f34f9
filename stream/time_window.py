"""The join by sampling time, pure: which of an analyzer's kept spectra a lab value's window holds, whether that
window can still receive spectra, and the one spectrum and prediction the pair carries (the nearest, or the
window's mean). ``lab_join_store.OnlineMonitor`` keeps the spectra and the waiting lab values."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

TimeJoinMode = Literal["nearest", "mean"]
_SEVERITY = {"ok": 0, "warning": 1, "outlier": 2}


class TimedSpectrum(Protocol):
    """What the window logic reads of a kept spectrum (``lab_join_store.WindowSpectrum``)."""

    acquired_at: float
    model_version: str
    grid: dict
    predicted: dict[str, float]
    flag: str
    values: np.ndarray


@dataclass(frozen=True, slots=True)
class WindowChoice:
    """The spectrum and prediction a time-joined pair carries."""

    spectrum: TimedSpectrum  # the nearest spectrum: its analyzer, model version and grid
    values: np.ndarray  # float32: the nearest spectrum, or the mean of those averaged
    predicted: dict[str, float]
    flag: str  # the worst flag of those averaged
    acquired_at: float  # the nearest's acquisition time, or the mean of those averaged
    count: int  # spectra averaged (1 for nearest)


def window_closed(newest_acquired_at: float | None, sampled_at: float, half_width: float) -> bool:
    """True once a spectrum acquired after the window's end was kept (``newest_acquired_at``: the analyzer's newest
    kept spectrum): an analyzer's spectra arrive in acquisition order (one partition per analyzer), so no spectrum of
    the window can come after it."""
    return newest_acquired_at is not None and newest_acquired_at > sampled_at + half_width


def in_window(spectra: Iterable[TimedSpectrum], sampled_at: float, half_width: float) -> list[TimedSpectrum]:
    """The spectra acquired within ``half_width`` seconds of ``sampled_at`` (both ends included)."""
    return [s for s in spectra if abs(s.acquired_at - sampled_at) <= half_width]


def choose(window: list[TimedSpectrum], sampled_at: float, mode: TimeJoinMode) -> WindowChoice:
    """The nearest spectrum of a non-empty ``window``, or (``mean``) the mean of the window's spectra that share the
    nearest one's model version and grid (a model swap inside the window leaves the other version's out)."""
    nearest = min(window, key=lambda s: (abs(s.acquired_at - sampled_at), s.acquired_at))
    if mode == "nearest":
        return WindowChoice(nearest, nearest.values, dict(nearest.predicted), nearest.flag, nearest.acquired_at, 1)
    alike = [s for s in window if s.model_version == nearest.model_version and s.grid == nearest.grid]
    values = np.mean([s.values for s in alike], axis=0, dtype=np.float64).astype(np.float32)
    predicted = {t: float(np.mean([s.predicted[t] for s in alike])) for t in nearest.predicted}
    flag = max((s.flag for s in alike), key=lambda f: _SEVERITY.get(f, 2))
    acquired_at = float(np.mean([s.acquired_at for s in alike]))
    return WindowChoice(nearest, values, predicted, flag, acquired_at, len(alike))


def describe_no_match(spectra: list[TimedSpectrum], sampled_at: float, half_width: float) -> str:
    """Why a closed window holds no spectrum: the nearest kept one's distance (a clock or time-zone mismatch shows
    as a round number of hours), or that none is kept."""
    if not spectra:
        return f"no spectrum of this analyzer is kept (none within ±{half_width:g} s of the sampling time)"
    nearest = min(spectra, key=lambda s: abs(s.acquired_at - sampled_at))
    offset = nearest.acquired_at - sampled_at
    return (f"no spectrum within ±{half_width:g} s of the sampling time; the nearest kept one was acquired "
            f"{abs(offset):.0f} s {'after' if offset > 0 else 'before'} it")
