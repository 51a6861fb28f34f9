"""Multiplicative scatter correction (MSC)."""

from __future__ import annotations

from sklearn.base import OneToOneFeatureMixin

from nirstream.core.chemometrics.steps.emsc import reference_or_mean
from nirstream.core.chemometrics.steps.step import SpectralStep


class MSC(OneToOneFeatureMixin, SpectralStep):
    """Multiplicative scatter correction: fit ``x = a + b * reference``, return ``(x - a) / b``.

    Parameters
    ----------
    reference : array of shape (n_channels,), default=None
        Spectrum to correct towards; the mean training spectrum when None.
    """

    _parameter_constraints: dict = {"reference": ["array-like", None]}

    def __init__(self, reference=None):
        self.reference = reference

    def _learn(self, X):
        self.reference_ = reference_or_mean(self, X)

    def apply(self, X):
        ref_centered = self.reference_ - self.reference_.mean()
        x_mean = X.mean(axis=1, keepdims=True)
        slope = ((X - x_mean) @ ref_centered)[:, None] / (ref_centered @ ref_centered)
        intercept = x_mean - slope * self.reference_.mean()
        return (X - intercept) / slope
