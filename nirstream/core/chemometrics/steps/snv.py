"""Standard normal variate: each spectrum centred and scaled by its own mean and standard deviation."""

from __future__ import annotations

from sklearn.base import OneToOneFeatureMixin

from nirstream.core.chemometrics.fitted.steps import StandardNormalVariate
from nirstream.core.chemometrics.steps.step import SpectralStep


class SNV(OneToOneFeatureMixin, SpectralStep):
    """SNV, nothing learnt; a spectrum with no variation gets NaN (the input screen names it degenerate first)."""

    _parameter_constraints: dict = {}
    fitted_class = StandardNormalVariate
