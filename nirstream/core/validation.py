"""Checks on spectrum values that every entry point (codec, worker, loaders) shares."""

from __future__ import annotations

import numpy as np

from nirstream.core.errors import RejectReason, SpectrumRejected


def check_spectrum_values(values: np.ndarray, expected_length: int) -> None:
    """Raise ``SpectrumRejected`` for a wrong length or any NaN/infinity."""
    if values.ndim != 1 or values.shape[0] != expected_length:
        raise SpectrumRejected(
            RejectReason.WRONG_LENGTH, f"{values.size} values where the grid announces {expected_length}"
        )
    if not np.isfinite(values).all():
        bad = int(np.count_nonzero(~np.isfinite(values)))
        raise SpectrumRejected(RejectReason.NON_FINITE, f"{bad} of {values.size} values are NaN or infinite")


def saturated_rows(spectra: np.ndarray, limit: float, max_fraction: float = 0.01) -> np.ndarray:
    """Boolean mask of rows where more than ``max_fraction`` of channels reach the detector ``limit``.

    A saturated detector clips at its ceiling, so the reading carries no chemistry there.
    """
    clipped = np.count_nonzero(spectra >= limit, axis=1)
    return clipped > max_fraction * spectra.shape[1]
