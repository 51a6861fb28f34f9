"""The final global scaling: one mean (a spectrum or a number) and one standard deviation for all channels."""

from __future__ import annotations

import numpy as np
from sklearn.base import OneToOneFeatureMixin
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from nirstream.core.chemometrics.fitted.steps import Scaling
from nirstream.core.chemometrics.steps.step import SpectralStep


class GlobalScaler(OneToOneFeatureMixin, SpectralStep):
    """Subtract a mean and divide by one standard deviation computed over the whole matrix.

    Unlike per-channel standardisation, one scale for all channels keeps the spectral shape.

    Parameters
    ----------
    centring : {"spectrum", "global"}, default="spectrum"
        ``spectrum`` subtracts the mean training spectrum and divides by the spread of what is left, so the
        model sees the differences *between* samples at unit size, whatever the data (on the corn set they are
        1 % of the absorbance: a network fed the paper's ``global`` scaling, one mean for the whole matrix,
        sees them 100x smaller than its input noise and does not learn). ``global`` is the paper's choice.

    Attributes
    ----------
    mean_ : float or ndarray of shape (n_channels,)
    scale_ : float
    """

    _parameter_constraints: dict = {"centring": [StrOptions({"spectrum", "global"})]}

    fitted_class = Scaling

    def __init__(self, centring: str = "spectrum"):
        self.centring = centring

    def _learn(self, X):
        self.mean_ = X.mean(axis=0) if self.centring == "spectrum" else float(X.mean())
        std = float((X - self.mean_).std())
        self.scale_ = std if std > 0 else 1.0

    def inverse_transform(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return self.fitted().inverse(X)
