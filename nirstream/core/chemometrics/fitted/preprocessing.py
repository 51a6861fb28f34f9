"""The fitted preprocessing chain as the worker runs it, NumPy only: the steps and input screen a bundle's state
describes (``SpectralPreprocessor.state``), applied by the same arithmetic the estimators call."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from nirstream.core.chemometrics.estimator_state import fitted_values
from nirstream.core.chemometrics.first_preprocessor_state import steps_format
from nirstream.core.chemometrics.fitted.input_screen import ScreenedFeatures, ScreenLimits
from nirstream.core.chemometrics.fitted.steps import BUNDLE_STEPS, Scaling, Window
from nirstream.core.messages.common import WavelengthGrid


def fitted_steps(scalars: dict[str, Any], arrays: dict[str, np.ndarray]) -> list[tuple[str, Any]]:
    """``(name, fitted step)`` of each step in a steps-format state; a step class outside ``BUNDLE_STEPS`` is refused."""
    steps = []
    for step in scalars["steps"]:
        name, arithmetic = step["name"], BUNDLE_STEPS.get(step["class"])
        if arithmetic is None:
            raise ValueError(f"unknown preprocessing step {step['class']!r}; known: {', '.join(BUNDLE_STEPS)}")
        steps.append((name, arithmetic.from_state(fitted_values(step["params"], f"{name}.params", arrays),
                                                  fitted_values(step["fitted"], name, arrays))))
    return steps


@dataclass(frozen=True)
class FittedPreprocessing:
    """A bundle's preprocessing: ``transform`` and ``screen_transform`` as ``SpectralPreprocessor`` has them.

    ``params`` are the preprocessor's parameters (``first_nm``, ``last_nm``, ``emsc_order``...); ``grid_`` is the
    input grid incoming spectra must match."""

    grid_: WavelengthGrid
    params: dict[str, Any]
    steps: list[tuple[str, Any]]
    screen: ScreenLimits

    @classmethod
    def from_state(cls, scalars: dict[str, Any], arrays: dict[str, np.ndarray]) -> FittedPreprocessing:
        """What ``SpectralPreprocessor.state`` wrote; states written before the steps existed too."""
        scalars, arrays = steps_format(scalars, arrays)
        return cls(WavelengthGrid.model_validate(scalars["grid"]), scalars["params"], fitted_steps(scalars, arrays),
                   ScreenLimits.from_state(fitted_values(scalars["screen"], "screen", arrays)))

    @property
    def first_nm(self) -> float | None:
        return self.params["first_nm"]

    @property
    def last_nm(self) -> float | None:
        return self.params["last_nm"]

    # The input screen's limits, read as the preprocessing's own (as on ``SpectralPreprocessor``).
    spread_floor_ = property(lambda self: self.screen.spread_floor_)
    derivative_floor_ = property(lambda self: self.screen.derivative_floor_)
    scale_floor_ = property(lambda self: self.screen.scale_floor_)
    coefficient_low_ = property(lambda self: self.screen.coefficient_low_)
    coefficient_high_ = property(lambda self: self.screen.coefficient_high_)

    @property
    def n_features_in_(self) -> int:
        return self.grid_.count

    @property
    def n_model_channels(self) -> int:
        window: Window = dict(self.steps)["window"]
        return window.stop_ - window.start_

    @property
    def scaler_(self) -> Scaling:
        return dict(self.steps)["scaling"]

    def checked(self, X) -> np.ndarray:
        """``X`` as a finite float64 matrix of the input grid's width, or ``ValueError``."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.grid_.count:
            raise ValueError(f"X has shape {X.shape}; the preprocessing takes (n_samples, {self.grid_.count})")
        if not np.isfinite(X).all():
            raise ValueError("Input X contains NaN or infinity")
        return X

    def transform(self, X) -> np.ndarray:
        X = self.checked(X)
        for _, step in self.steps:
            X = step.apply(X)
        return X

    def screen_transform(self, X) -> ScreenedFeatures:
        """Transform a batch without ever raising on finite input; report degenerate and out-of-range spectra."""
        return self.screen.screen(self.steps, self.checked(X))
