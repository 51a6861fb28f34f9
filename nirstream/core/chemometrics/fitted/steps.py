"""Each preprocessing step's arithmetic, fitted: built from the step estimator's parameters and fitted attributes
(``from_state(params, fitted)``, the attributes under the estimator's own names), NumPy only.

``apply`` takes a float64 array of the fitted width, unvalidated: NaN and infinity pass through (the input screen
names them where they appear). The estimators in ``steps/`` validate, then call ``apply`` of these.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from nirstream.core.chemometrics.fitted.savitzky_golay import local_polynomial_weights, savitzky_golay


def scaled_axis(n_channels: int, wavelengths: np.ndarray | None = None) -> np.ndarray:
    """The channel axis mapped linearly onto [-1, 1] (keeps polynomial terms well conditioned)."""
    if wavelengths is None:
        return np.linspace(-1.0, 1.0, n_channels)
    wl = np.asarray(wavelengths, dtype=float)
    if wl.shape != (n_channels,):
        raise ValueError(f"wavelengths has shape {wl.shape}, expected ({n_channels},)")
    low, high = wl.min(), wl.max()
    if high == low:
        raise ValueError("wavelengths must span a non-zero range")
    return 2.0 * (wl - low) / (high - low) - 1.0


def emsc_design(reference: np.ndarray, order: int, wavelengths=None, interferents=None) -> np.ndarray:
    """EMSC's regressors (n_channels, n_terms): the reference, then 1, a, ..., a**order, then the interferents."""
    n_channels = reference.shape[0]
    axis = scaled_axis(n_channels, wavelengths)
    columns = [reference, *(axis**power for power in range(order + 1))]
    if interferents is not None:
        interferents = np.atleast_2d(np.asarray(interferents, dtype=float))
        if interferents.shape[1] != n_channels:
            raise ValueError(f"interferents have {interferents.shape[1]} channels, expected {n_channels}")
        columns.extend(interferents)
    return np.column_stack(columns)


@dataclass(frozen=True)
class Window:
    start_: int
    stop_: int

    @classmethod
    def from_state(cls, params: dict[str, Any], fitted: dict[str, Any]) -> Window:
        return cls(int(fitted["start_"]), int(fitted["stop_"]))

    def apply(self, X: np.ndarray) -> np.ndarray:
        return X[:, self.start_:self.stop_]


@dataclass(frozen=True)
class SavitzkyGolay:
    weights: np.ndarray  # local_polynomial_weights of the fitted window

    @classmethod
    def from_state(cls, params: dict[str, Any], fitted: dict[str, Any]) -> SavitzkyGolay:
        return cls(local_polynomial_weights(int(fitted["window_length_"]), int(params["polyorder"]), int(params["deriv"])))

    def apply(self, X: np.ndarray) -> np.ndarray:
        return savitzky_golay(X, self.weights)


@dataclass(frozen=True)
class StandardNormalVariate:
    @classmethod
    def from_state(cls, params: dict[str, Any], fitted: dict[str, Any]) -> StandardNormalVariate:
        return cls()

    def apply(self, X: np.ndarray) -> np.ndarray:
        spread = X.std(axis=1, keepdims=True)
        with np.errstate(all="ignore"):
            return (X - X.mean(axis=1, keepdims=True)) / np.where(spread > 0, spread, np.nan)


@dataclass(frozen=True)
class EMSCCorrection:
    design_: np.ndarray  # (n_channels, n_terms), reference first
    pseudo_inverse_: np.ndarray  # (n_terms, n_channels)

    @classmethod
    def from_state(cls, params: dict[str, Any], fitted: dict[str, Any]) -> EMSCCorrection:
        return cls(np.asarray(fitted["design_"], np.float64), np.asarray(fitted["pseudo_inverse_"], np.float64))

    def coefficients_of(self, X: np.ndarray) -> np.ndarray:
        """Regression coefficients per spectrum, shape (n_samples, n_terms), reference first."""
        return X @ self.pseudo_inverse_.T

    def apply(self, X: np.ndarray) -> np.ndarray:
        return self.correct(X, self.coefficients_of(X))

    def correct(self, X: np.ndarray, coefficients: np.ndarray) -> np.ndarray:
        """``(x - polynomial and interferent parts) / b_reference`` for spectra whose coefficients are known."""
        unwanted = coefficients[:, 1:] @ self.design_[:, 1:].T
        return (X - unwanted) / coefficients[:, :1]


@dataclass(frozen=True)
class MSCCorrection:
    reference_: np.ndarray

    @classmethod
    def from_state(cls, params: dict[str, Any], fitted: dict[str, Any]) -> MSCCorrection:
        return cls(np.asarray(fitted["reference_"], np.float64))

    def apply(self, X: np.ndarray) -> np.ndarray:
        ref_centered = self.reference_ - self.reference_.mean()
        x_mean = X.mean(axis=1, keepdims=True)
        slope = ((X - x_mean) @ ref_centered)[:, None] / (ref_centered @ ref_centered)
        intercept = x_mean - slope * self.reference_.mean()
        return (X - intercept) / slope


@dataclass(frozen=True)
class Scaling:
    mean_: float | np.ndarray
    scale_: float

    @classmethod
    def from_state(cls, params: dict[str, Any], fitted: dict[str, Any]) -> Scaling:
        mean = fitted["mean_"]
        return cls(np.asarray(mean, np.float64) if np.ndim(mean) else float(mean), float(fitted["scale_"]))

    def apply(self, X: np.ndarray) -> np.ndarray:
        return (X - self.mean_) / self.scale_

    def inverse(self, X: np.ndarray) -> np.ndarray:
        return X * self.scale_ + self.mean_


@dataclass(frozen=True)
class Detrend:
    basis_: np.ndarray  # (n_channels, degree + 1), orthonormal

    @classmethod
    def from_state(cls, params: dict[str, Any], fitted: dict[str, Any]) -> Detrend:
        return cls(np.asarray(fitted["basis_"], np.float64))

    def apply(self, X: np.ndarray) -> np.ndarray:
        return X - (X @ self.basis_) @ self.basis_.T


# The step estimators a bundle may hold, by class name (what ``estimator_state`` stores), and their arithmetic.
BUNDLE_STEPS = {"WavelengthWindow": Window, "SavitzkyGolayDerivative": SavitzkyGolay, "SNV": StandardNormalVariate,
                "EMSC": EMSCCorrection, "GlobalScaler": Scaling}
