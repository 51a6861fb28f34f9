"""A linear model on preprocessed spectra (PLS and other linear families), stored as plain arrays.

``y = features @ weights + bias`` in the targets' units. A fitted scikit-learn ``PLSRegression`` (one per
target, each with its own number of latent variables) collapses to exactly this, so the worker serves a
PLS model with a matrix product: no pickle, no framework, the same preprocessing object as the CNN.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LinearModel:
    weights: np.ndarray  # (n_features, n_targets)
    bias: np.ndarray  # (n_targets,)

    def __post_init__(self) -> None:
        if self.weights.ndim != 2 or self.bias.shape != (self.weights.shape[1],):
            raise ValueError(f"weights {self.weights.shape} and bias {self.bias.shape} do not fit together")
        if not (np.isfinite(self.weights).all() and np.isfinite(self.bias).all()):
            raise ValueError("a linear model's weights must be finite")

    @property
    def n_inputs(self) -> int:
        return self.weights.shape[0]

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Predictions (n, n_targets) of preprocessed spectra (n, n_features)."""
        return np.asarray(features, dtype=np.float64) @ self.weights + self.bias

    @classmethod
    def from_pls(cls, models: list) -> LinearModel:
        """One column per fitted single-target ``PLSRegression``. Its ``predict`` is ``(X - x_mean) @ coef_.T + intercept_``
        (``coef_`` already carries the scaling); folded into one product: ``bias = intercept_ - x_mean @ coef_.T``."""
        columns, biases = [], []
        for m in models:
            weights = np.asarray(m.coef_, dtype=np.float64).reshape(-1)
            columns.append(weights)
            biases.append(float(np.ravel(m.intercept_)[0]) - float(np.asarray(m._x_mean, dtype=np.float64) @ weights))
        return cls(np.column_stack(columns), np.array(biases))
