"""Norris–Williams gap derivative: a moving-average smooth, then the difference across a gap (once or twice)."""

from __future__ import annotations

from numbers import Integral

import numpy as np
from sklearn.base import OneToOneFeatureMixin
from sklearn.utils._param_validation import Interval

from nirstream.core.chemometrics.steps.step import SpectralStep


class NorrisWilliamsDerivative(OneToOneFeatureMixin, SpectralStep):
    """``d[i] = s[i + gap] - s[i - gap]`` of the smoothed spectrum ``s`` (edges repeated), ``order`` times.

    Parameters
    ----------
    gap : int, default=5
        Channels either side; wider gaps average out noise at the cost of resolution.
    smoothing : int, default=5
        Channels in the moving average before differencing (1: none).
    order : {1, 2}, default=1

    Attributes
    ----------
    n_features_in_ : int
    """

    _parameter_constraints: dict = {
        "gap": [Interval(Integral, 1, None, closed="left")],
        "smoothing": [Interval(Integral, 1, None, closed="left")],
        "order": [Interval(Integral, 1, 2, closed="both")],
    }

    def __init__(self, gap: int = 5, smoothing: int = 5, order: int = 1):
        self.gap = gap
        self.smoothing = smoothing
        self.order = order

    def apply(self, X):
        from scipy.ndimage import uniform_filter1d  # fitting-time only: serving folds this step into linear weights

        result = uniform_filter1d(X, self.smoothing, axis=1, mode="nearest") if self.smoothing > 1 else X
        for _ in range(self.order):
            padded = np.pad(result, ((0, 0), (self.gap, self.gap)), mode="edge")
            result = padded[:, 2 * self.gap:] - padded[:, :-2 * self.gap]
        return result
