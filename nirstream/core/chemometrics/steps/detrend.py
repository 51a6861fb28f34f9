"""Polynomial detrend: removes each spectrum's least-squares polynomial baseline (a linear projection)."""

from __future__ import annotations

from numbers import Integral

import numpy as np
from sklearn.base import OneToOneFeatureMixin
from sklearn.utils._param_validation import Interval

from nirstream.core.chemometrics.fitted.steps import Detrend
from nirstream.core.chemometrics.steps.step import SpectralStep


class PolynomialDetrend(OneToOneFeatureMixin, SpectralStep):
    """Subtract the projection of each spectrum onto polynomials of degree 0..``degree`` over the channel axis.

    Parameters
    ----------
    degree : int, default=1
        1 removes offset and slope, 2 also curvature.

    Attributes
    ----------
    basis_ : ndarray of shape (n_channels, degree + 1) -- orthonormal polynomial basis on [-1, 1]
    """

    _parameter_constraints: dict = {"degree": [Interval(Integral, 0, None, closed="left")]}

    fitted_class = Detrend

    def __init__(self, degree: int = 1):
        self.degree = degree

    def _learn(self, X):
        axis = np.linspace(-1.0, 1.0, X.shape[1])
        self.basis_ = np.linalg.qr(np.vander(axis, self.degree + 1, increasing=True))[0]
