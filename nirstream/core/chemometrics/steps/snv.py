"""Standard normal variate: each spectrum centred and scaled by its own mean and standard deviation."""

from __future__ import annotations

import numpy as np
from sklearn.base import OneToOneFeatureMixin

from nirstream.core.chemometrics.steps.step import SpectralStep


class SNV(OneToOneFeatureMixin, SpectralStep):
    """SNV, nothing learnt; a spectrum with no variation gets NaN (the input screen names it degenerate first)."""

    _parameter_constraints: dict = {}

    def apply(self, X):
        spread = X.std(axis=1, keepdims=True)
        with np.errstate(all="ignore"):
            return (X - X.mean(axis=1, keepdims=True)) / np.where(spread > 0, spread, np.nan)
