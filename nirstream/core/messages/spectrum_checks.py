"""Checks on spectrum values that every entry point (codec, worker, loaders) shares."""

from __future__ import annotations

import numpy as np

from nirstream.core.errors import RejectReason, SpectrumRejected


def check_spectrum_values(values: np.ndarray, expected_length: int) -> None:
    """Raise ``SpectrumRejected`` for a wrong length or any NaN/infinity."""
    check_spectrum_length(values, expected_length)
    if not np.isfinite(values).all():
        raise SpectrumRejected(RejectReason.NON_FINITE, non_finite_detail(values))


def check_spectrum_length(values: np.ndarray, expected_length: int) -> None:
    """Raise ``SpectrumRejected(WRONG_LENGTH)`` unless ``values`` is 1-D with ``expected_length`` entries."""
    if values.ndim != 1 or values.shape[0] != expected_length:
        raise SpectrumRejected(
            RejectReason.WRONG_LENGTH, f"{values.size} values where the grid announces {expected_length}"
        )


def non_finite_rows(spectra: np.ndarray) -> np.ndarray:
    """Boolean mask of the rows holding any NaN or infinity (one vectorised pass over a batch)."""
    return ~np.isfinite(spectra).all(axis=1)


def non_finite_detail(values: np.ndarray) -> str:
    """The dead letter's detail for a spectrum with NaN or infinite values."""
    bad = int(np.count_nonzero(~np.isfinite(values)))
    return f"{bad} of {values.size} values are NaN or infinite"


def saturated_rows(spectra: np.ndarray, limit: float, max_fraction: float = 0.01) -> np.ndarray:
    """Boolean mask of rows where more than ``max_fraction`` of channels reach the detector ``limit``.

    A saturated detector clips at its ceiling, so the reading carries no chemistry there.
    """
    clipped = np.count_nonzero(spectra >= limit, axis=1)
    return clipped > max_fraction * spectra.shape[1]
