"""Spectral preprocessing transformers in scikit-learn style.

Each class follows the scikit-learn contract: hyper-parameters in ``__init__``, learned state
in attributes ending in ``_`` set by ``fit``, input checked by ``validate_data`` (finite,
numeric, 2-D, same channel count as at fit time). They work in ``sklearn.pipeline.Pipeline``.
"""

from __future__ import annotations

import numpy as np
from numbers import Integral

from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data


def scaled_axis(n_channels: int, wavelengths: np.ndarray | None = None) -> np.ndarray:
    """The channel axis mapped linearly onto [-1, 1] (keeps polynomial terms well conditioned)."""
    if wavelengths is None:
        return np.linspace(-1.0, 1.0, n_channels)
    wl = np.asarray(wavelengths, dtype=float)
    if wl.shape != (n_channels,):
        raise ValueError(f"wavelengths has shape {wl.shape}, expected ({n_channels},)")
    low, high = wl.min(), wl.max()
    if high == low:
        raise ValueError("wavelengths must span a non-zero range")
    return 2.0 * (wl - low) / (high - low) - 1.0


def _reference_or_mean(estimator: BaseEstimator, X: np.ndarray) -> np.ndarray:
    if estimator.reference is None:
        return X.mean(axis=0)
    reference = np.asarray(estimator.reference, dtype=float)
    if reference.shape != (X.shape[1],):
        raise ValueError(f"reference has shape {reference.shape}, expected ({X.shape[1]},)")
    if not np.isfinite(reference).all():
        raise ValueError("reference contains NaN or infinity")
    return reference


class GlobalScaler(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
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

    def __init__(self, centring: str = "spectrum"):
        self.centring = centring

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        X = validate_data(self, X, dtype=np.float64)
        self.mean_ = X.mean(axis=0) if self.centring == "spectrum" else float(X.mean())
        std = float((X - self.mean_).std())
        self.scale_ = std if std > 0 else 1.0
        return self

    def transform(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return (X - self.mean_) / self.scale_

    def inverse_transform(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return X * self.scale_ + self.mean_


class MSC(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Multiplicative scatter correction: fit ``x = a + b * reference``, return ``(x - a) / b``.

    Parameters
    ----------
    reference : array of shape (n_channels,), default=None
        Spectrum to correct towards; the mean training spectrum when None.
    """

    _parameter_constraints: dict = {"reference": ["array-like", None]}

    def __init__(self, reference=None):
        self.reference = reference

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        X = validate_data(self, X, dtype=np.float64)
        self.reference_ = _reference_or_mean(self, X)
        return self

    def transform(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        ref_centered = self.reference_ - self.reference_.mean()
        x_mean = X.mean(axis=1, keepdims=True)
        slope = ((X - x_mean) @ ref_centered)[:, None] / (ref_centered @ ref_centered)
        intercept = x_mean - slope * self.reference_.mean()
        return (X - intercept) / slope


class EMSC(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Extended multiplicative signal correction, a whole batch in one matrix product.

    Each spectrum is regressed on ``[reference, 1, a, a**2, ..., a**order, interferents...]``
    where ``a`` is the channel axis scaled to [-1, 1]; the corrected spectrum is
    ``(x - polynomial part - interferent part) / b_reference``. Order 0 is MSC.

    Parameters
    ----------
    order : int, default=2
        Degree of the polynomial baseline.
    reference : array of shape (n_channels,), default=None
        Spectrum to correct towards; the mean training spectrum when None.
    interferents : array of shape (n_interferents, n_channels), default=None
        Known unwanted spectra (water, a coating...) whose contribution is removed.
    wavelengths : array of shape (n_channels,), default=None
        Channel positions for the polynomial axis; evenly spaced channels when None.

    Attributes
    ----------
    reference_ : ndarray of shape (n_channels,)
    design_ : ndarray of shape (n_channels, n_terms)
        Regressors, reference first.
    pseudo_inverse_ : ndarray of shape (n_terms, n_channels)
        Precomputed so that coefficients of a batch are ``X @ pseudo_inverse_.T``.
    """

    _parameter_constraints: dict = {
        "order": [Interval(Integral, 0, None, closed="left")],
        "reference": ["array-like", None],
        "interferents": ["array-like", None],
        "wavelengths": ["array-like", None],
    }

    def __init__(self, order: int = 2, reference=None, interferents=None, wavelengths=None):
        self.order = order
        self.reference = reference
        self.interferents = interferents
        self.wavelengths = wavelengths

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        X = validate_data(self, X, dtype=np.float64)
        n_channels = X.shape[1]
        self.reference_ = _reference_or_mean(self, X)
        axis = scaled_axis(n_channels, self.wavelengths)
        columns = [self.reference_, *(axis**power for power in range(self.order + 1))]
        if self.interferents is not None:
            interferents = np.atleast_2d(np.asarray(self.interferents, dtype=float))
            if interferents.shape[1] != n_channels:
                raise ValueError(f"interferents have {interferents.shape[1]} channels, expected {n_channels}")
            columns.extend(interferents)
        self.design_ = np.column_stack(columns)
        if np.linalg.matrix_rank(self.design_) < self.design_.shape[1]:
            raise ValueError(f"EMSC design matrix is rank deficient ({self.design_.shape[1]} terms, n_features = "
                             f"{n_channels} channels): reduce order or remove collinear interferents")
        self.pseudo_inverse_ = np.linalg.pinv(self.design_)
        return self

    def coefficients(self, X) -> np.ndarray:
        """Regression coefficients per spectrum, shape (n_samples, n_terms), reference first."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return X @ self.pseudo_inverse_.T

    def transform(self, X):
        return self.correct(np.asarray(X, dtype=np.float64), self.coefficients(X))

    def correct(self, X: np.ndarray, coefficients: np.ndarray) -> np.ndarray:
        """``(x - polynomial and interferent parts) / b_reference`` for spectra whose coefficients are known."""
        unwanted = coefficients[:, 1:] @ self.design_[:, 1:].T
        return (X - unwanted) / coefficients[:, :1]
