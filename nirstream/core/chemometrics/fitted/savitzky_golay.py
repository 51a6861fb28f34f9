"""Savitzky–Golay derivative as a NumPy linear operator: SciPy's ``savgol_filter(mode="interp")``, without SciPy.

Every output channel is a fixed linear combination of ``window_length`` input channels: interior channels take the
derivative at the centre of a least-squares polynomial fitted over the window around them, the first and last
``window_length // 2`` channels the derivative at their own position of the polynomial fitted over the first (last)
window (SciPy's "interp" edges). Rows of one (window, window) matrix give all of these weights.
"""

from __future__ import annotations

from math import factorial

import numpy as np


def local_polynomial_weights(window_length: int, polyorder: int, deriv: int) -> np.ndarray:
    """(window, window): row ``j`` maps a window's values to the ``deriv``-th derivative, at position ``j``, of the
    degree-``polyorder`` polynomial fitted to them (positions 0..window-1, unit spacing)."""
    positions = np.arange(window_length, dtype=np.float64)
    fit = np.linalg.pinv(np.vander(positions, polyorder + 1, increasing=True))  # polynomial coefficients of a window
    powers = np.arange(polyorder + 1)
    falling = np.array([factorial(p) / factorial(p - deriv) if p >= deriv else 0.0 for p in powers])
    derivative_basis = falling * positions[:, None] ** np.maximum(powers - deriv, 0)
    return derivative_basis @ fit


def savitzky_golay(X: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Apply ``local_polynomial_weights`` along the channels of ``X`` (n_samples, n_channels >= window)."""
    window = weights.shape[0]
    half, n = window // 2, X.shape[1]
    centre = weights[half]
    result = np.empty_like(X, dtype=np.float64)
    interior = centre[0] * X[:, : n - window + 1]
    for tap in range(1, window):  # a few dozen vector operations: cheaper than a dense (n, n) product
        interior = interior + centre[tap] * X[:, tap : tap + n - window + 1]
    result[:, half : n - half] = interior
    result[:, :half] = X[:, :window] @ weights[:half].T
    result[:, n - half :] = X[:, n - window :] @ weights[half + 1 :].T
    return result
