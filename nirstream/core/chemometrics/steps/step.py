"""What every preprocessing step shares: ``fit`` validates and learns, ``transform`` validates then applies the
step's arithmetic, which lives NumPy-only in ``fitted/steps.py`` (``fitted_class``) and is built from the step's
parameters and fitted attributes: the worker builds the same object from a bundle without scikit-learn.

The input screen walks the fitted steps through ``apply`` without validating between them, so NaN and
overflow from a hostile spectrum travel on to where the screen names them instead of raising.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils.validation import check_is_fitted, validate_data

from nirstream.core.chemometrics.estimator_state import fitted_attributes


class SpectralStep(TransformerMixin, BaseEstimator):
    """Base of the steps: ``fit`` validates and calls ``_learn``; ``transform`` validates and calls ``apply``."""

    fitted_class: ClassVar[type]  # the step's arithmetic: ``from_state(params, fitted)`` and ``apply``

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        X = validate_data(self, X, dtype=np.float64)
        self._learn(X)
        return self

    def _learn(self, X: np.ndarray) -> None:
        """What the step learns from validated training spectra (nothing, for a per-spectrum step)."""

    def fitted(self) -> Any:
        """The fitted arithmetic (``fitted_class``) of this fitted step."""
        return self.fitted_class.from_state(self.get_params(deep=False), fitted_attributes(self))

    def transform(self, X):
        check_is_fitted(self)
        return self.apply(validate_data(self, X, dtype=np.float64, reset=False))

    def apply(self, X: np.ndarray) -> np.ndarray:
        """The step's arithmetic on a float64 array of the fitted width (not validated: NaN and inf pass through)."""
        return self.fitted().apply(X)
