"""Extended multiplicative signal correction (EMSC), and the reference and polynomial axis it shares with MSC."""

from __future__ import annotations

from numbers import Integral

import numpy as np
from sklearn.base import BaseEstimator, OneToOneFeatureMixin
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted, validate_data

from nirstream.core.chemometrics.fitted.steps import EMSCCorrection, emsc_design, scaled_axis
from nirstream.core.chemometrics.steps.step import SpectralStep

__all__ = ["EMSC", "reference_or_mean", "scaled_axis"]


def reference_or_mean(estimator: BaseEstimator, X: np.ndarray) -> np.ndarray:
    """The estimator's ``reference`` checked against ``X``'s channels, or ``X``'s mean spectrum when None."""
    if estimator.reference is None:
        return X.mean(axis=0)
    reference = np.asarray(estimator.reference, dtype=float)
    if reference.shape != (X.shape[1],):
        raise ValueError(f"reference has shape {reference.shape}, expected ({X.shape[1]},)")
    if not np.isfinite(reference).all():
        raise ValueError("reference contains NaN or infinity")
    return reference


class EMSC(OneToOneFeatureMixin, SpectralStep):
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

    fitted_class = EMSCCorrection

    def __init__(self, order: int = 2, reference=None, interferents=None, wavelengths=None):
        self.order = order
        self.reference = reference
        self.interferents = interferents
        self.wavelengths = wavelengths

    def _learn(self, X):
        self.reference_ = reference_or_mean(self, X)
        self.design_ = emsc_design(self.reference_, self.order, self.wavelengths, self.interferents)
        if np.linalg.matrix_rank(self.design_) < self.design_.shape[1]:
            raise ValueError(f"EMSC design matrix is rank deficient ({self.design_.shape[1]} terms, n_features = "
                             f"{X.shape[1]} channels): reduce order or remove collinear interferents")
        self.pseudo_inverse_ = np.linalg.pinv(self.design_)

    def coefficients(self, X) -> np.ndarray:
        """Regression coefficients per spectrum, shape (n_samples, n_terms), reference first."""
        check_is_fitted(self)
        return self.fitted().coefficients_of(validate_data(self, X, dtype=np.float64, reset=False))
