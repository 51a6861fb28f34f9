"""Multiplicative scatter correction (MSC)."""

from __future__ import annotations

from sklearn.base import OneToOneFeatureMixin

from nirstream.core.chemometrics.steps.emsc import reference_or_mean
from nirstream.core.chemometrics.fitted.steps import MSCCorrection
from nirstream.core.chemometrics.steps.step import SpectralStep


class MSC(OneToOneFeatureMixin, SpectralStep):
    """Multiplicative scatter correction: fit ``x = a + b * reference``, return ``(x - a) / b``.

    Parameters
    ----------
    reference : array of shape (n_channels,), default=None
        Spectrum to correct towards; the mean training spectrum when None.
    """

    _parameter_constraints: dict = {"reference": ["array-like", None]}

    fitted_class = MSCCorrection

    def __init__(self, reference=None):
        self.reference = reference

    def _learn(self, X):
        self.reference_ = reference_or_mean(self, X)
