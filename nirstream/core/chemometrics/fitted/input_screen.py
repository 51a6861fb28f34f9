"""The input screen's walk, NumPy only: a batch through the fitted steps, checked between them against the limits
``chemometrics.input_screen.InputScreen`` learnt from training spectra (the rules are described there)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


def apply_steps(steps: Sequence[tuple[str, Any]], X: np.ndarray) -> Iterator[tuple[str, Any, np.ndarray, np.ndarray]]:
    """``(name, fitted step, its input, its output)`` for each step in turn, through ``apply`` (nothing validated
    between steps, so NaN and overflow from a hostile spectrum travel on to where the screen names them)."""
    for name, step in steps:
        output = step.apply(X)
        yield name, step, X, output
        X = output


@dataclass(frozen=True)
class ScreenedFeatures:
    """Model features of a batch, with what the input screen found per spectrum.

    ``degenerate`` rows carry no usable spectrum (zero, constant, negative EMSC scale, overflow):
    their features are zeros and must not be predicted; ``details`` says why. ``outside`` rows
    have EMSC coefficients (scale, offset, slope...) beyond the training range: predict, flag outlier.
    """

    features: np.ndarray
    degenerate: np.ndarray
    details: np.ndarray  # per spectrum, '' when usable
    outside: np.ndarray


@dataclass(frozen=True)
class ScreenLimits:
    """The limits ``InputScreen`` learnt, under its fitted attributes' names (a bundle's ``screen`` state)."""

    spread_floor_: float
    derivative_floor_: float = 0.0
    scale_floor_: float = 0.0
    coefficient_low_: np.ndarray | None = None
    coefficient_high_: np.ndarray | None = None

    @classmethod
    def from_state(cls, fitted: dict[str, Any]) -> ScreenLimits:
        return cls(**{name: fitted[name] for name in cls.__dataclass_fields__ if name in fitted})

    def screen(self, steps: Sequence[tuple[str, Any]], X: np.ndarray) -> ScreenedFeatures:
        """Features of validated spectra ``X`` without ever raising on finite input, and what was found per spectrum."""
        n = X.shape[0]
        details = np.full(n, "", dtype=object)
        outside = np.zeros(n, dtype=bool)
        with np.errstate(all="ignore"):
            for name, step, before, after in apply_steps(steps, X):
                if name == "window":
                    self._check_spread(after, details)
                elif name == "derivative":
                    self._check_derivative(after, details)
                elif name == "emsc":
                    outside = self._check_emsc(step.coefficients_of(before), details)
            features = np.where((details == "")[:, None], after, 0.0)
        overflow = ~np.isfinite(features).all(axis=1)
        details[overflow] = "preprocessed values overflow: the spectrum is far outside anything the model knows"
        features[overflow] = 0.0
        degenerate = details != ""
        return ScreenedFeatures(features, degenerate, details, outside & ~degenerate)

    def _check_spread(self, windowed: np.ndarray, details: np.ndarray) -> None:
        spread = windowed.std(axis=1)
        for i in np.flatnonzero(~(spread > self.spread_floor_)):
            details[i] = (f"nearly constant spectrum: spread {spread[i]:.3g} at or below the floor "
                          f"{self.spread_floor_:.3g} learnt from training")

    def _check_derivative(self, differentiated: np.ndarray, details: np.ndarray) -> None:
        spread = differentiated.std(axis=1)
        for i in np.flatnonzero((details == "") & ~(spread > self.derivative_floor_)):
            details[i] = (f"no band structure: spread {spread[i]:.3g} of the derivative at or below the "
                          f"floor {self.derivative_floor_:.3g} learnt from training (a straight or constant spectrum)")

    def _check_emsc(self, coefficients: np.ndarray, details: np.ndarray) -> np.ndarray:
        """Name the rows with no usable EMSC scale; return the rows whose coefficients lie outside the training range."""
        scale = coefficients[:, 0]
        unusable = ~(scale > self.scale_floor_) | ~np.isfinite(coefficients).all(axis=1)
        for i in np.flatnonzero((details == "") & unusable):
            details[i] = (f"EMSC scale {scale[i]:.3g} is zero, negative or below {self.scale_floor_:.3g} (1 % of "
                          "the smallest training scale): no usable signal, or a sign/units fault")
        if self.coefficient_low_ is None:
            return np.zeros(len(coefficients), dtype=bool)
        return ((coefficients < self.coefficient_low_) | (coefficients > self.coefficient_high_)).any(axis=1)
