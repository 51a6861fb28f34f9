"""What every preprocessing step shares: ``apply`` holds its arithmetic, ``transform`` validates then applies.

The input screen walks the same fitted steps through ``apply`` without validating between them, so NaN and
overflow from a hostile spectrum travel on to where the screen names them instead of raising.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted, validate_data


class SpectralStep(TransformerMixin, BaseEstimator):
    """Base of the steps: ``fit`` validates and calls ``_learn``; ``transform`` validates and calls ``apply``."""

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        X = validate_data(self, X, dtype=np.float64)
        self._learn(X)
        return self

    def _learn(self, X: np.ndarray) -> None:
        """What the step learns from validated training spectra (nothing, for a per-spectrum step)."""

    def transform(self, X):
        check_is_fitted(self)
        return self.apply(validate_data(self, X, dtype=np.float64, reset=False))

    def apply(self, X: np.ndarray) -> np.ndarray:
        """The step's arithmetic on a float64 array of the fitted width (not validated: NaN and inf pass through)."""
        raise NotImplementedError


def apply_steps(steps: Pipeline, X: np.ndarray) -> Iterator[tuple[str, SpectralStep, np.ndarray, np.ndarray]]:
    """``(name, step, its input, its output)`` for each fitted step in turn, through ``apply`` (see the module)."""
    for name, step in steps.steps:
        output = step.apply(X)
        yield name, step, X, output
        X = output
