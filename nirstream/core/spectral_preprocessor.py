"""The one preprocessing chain both the trainer and the worker run: channel window -> EMSC -> global scaling.

Its fitted state is plain numbers and arrays (``state``/``from_state``), so a model bundle
stores it without pickles and the worker rebuilds exactly what the trainer fitted.
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted, validate_data

from nirstream.core.preprocessing import EMSC, GlobalScaler
from nirstream.core.messages.common import WavelengthGrid


# How the input screen's limits come from the training spectra (see ``learn_input_range``):
SPREAD_FLOOR_FRACTION = 0.01  # flatter than 1 % of the flattest training spectrum: nearly constant
SCALE_FLOOR_FRACTION = 0.01  # EMSC scale below 1 % of the smallest training scale: no usable signal
COEFFICIENT_MARGIN = 0.5  # EMSC coefficients beyond the training range widened by half its width: outlier


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


class SpectralPreprocessor(TransformerMixin, BaseEstimator):
    """Select a wavelength window, optionally EMSC-correct, then scale globally.

    The trainer fits exactly this object (inside ``CNNRegressor`` and for PLS), the bundle stores
    its fitted state, and the worker runs it: there is no second chain to keep in step.

    Parameters
    ----------
    wavelengths : array of shape (n_channels,) or None
        The input grid (what analyzers send), evenly spaced; None numbers the channels 1, 2, ...
    first_nm, last_nm : float or None
        Inclusive window kept for the model; the whole grid when None.
    emsc_order : int or None, default=2
        Polynomial order of EMSC (reference = mean training spectrum); None skips EMSC.

    Attributes
    ----------
    grid_ : WavelengthGrid  -- input grid incoming spectra must match
    window_ : slice         -- channels kept
    emsc_ : EMSC or None
    scaler_ : GlobalScaler
    spread_floor_ : float          -- per-spectrum standard deviation below which a spectrum is degenerate
    scale_floor_ : float           -- EMSC reference coefficient at or below which a spectrum is degenerate
    coefficient_low_, coefficient_high_ : ndarray or None -- accepted EMSC coefficient range (else outlier)
    """

    _parameter_constraints: dict = {
        "wavelengths": ["array-like", None],
        "first_nm": [Real, None],
        "last_nm": [Real, None],
        "emsc_order": [Interval(Integral, 0, None, closed="left"), None],
    }

    def __init__(self, wavelengths=None, first_nm: float | None = None, last_nm: float | None = None,
                 emsc_order: int | None = 2):
        self.wavelengths = wavelengths
        self.first_nm = first_nm
        self.last_nm = last_nm
        self.emsc_order = emsc_order

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        X = validate_data(self, X, dtype=np.float64)
        wl = np.arange(1.0, X.shape[1] + 1) if self.wavelengths is None else np.asarray(self.wavelengths, dtype=float)
        if wl.size != X.shape[1]:
            raise ValueError(f"wavelengths has {wl.size} entries but X has {X.shape[1]} channels")
        keep = np.flatnonzero((wl >= (self.first_nm or -np.inf)) & (wl <= (self.last_nm or np.inf)))
        if keep.size < 2:
            raise ValueError(f"window {self.first_nm}-{self.last_nm} nm keeps {keep.size} of n_features = {X.shape[1]} "
                             "channels; need at least 2")
        self.grid_ = WavelengthGrid.from_wavelengths(wl)
        self.window_ = slice(int(keep[0]), int(keep[-1]) + 1)
        windowed = X[:, self.window_]
        self.emsc_ = None if self.emsc_order is None else EMSC(order=self.emsc_order).fit(windowed)
        self.scaler_ = GlobalScaler().fit(self._correct(windowed))
        return self.learn_input_range(X)

    def learn_input_range(self, X) -> SpectralPreprocessor:
        """Set the input screen's limits from training spectra ``X`` (input grid, not augmented).

        A spectrum is degenerate when its spread (std over the window's channels) is below
        ``SPREAD_FLOOR_FRACTION`` of the flattest training spectrum's, or its EMSC scale (the
        reference coefficient) is below ``SCALE_FLOOR_FRACTION`` of the smallest training scale
        (zero and negative always). Its EMSC coefficients are outside when beyond the training
        range widened by ``COEFFICIENT_MARGIN`` of its width on each side.
        """
        check_is_fitted(self, "window_")
        windowed = np.asarray(X, dtype=np.float64)[:, self.window_]
        self.spread_floor_ = float(SPREAD_FLOOR_FRACTION * windowed.std(axis=1).min())
        self.scale_floor_ = 0.0
        self.coefficient_low_ = self.coefficient_high_ = None
        if self.emsc_ is not None:
            coefficients = self.emsc_.coefficients(windowed)
            low, high = coefficients.min(axis=0), coefficients.max(axis=0)
            width = high - low
            self.coefficient_low_, self.coefficient_high_ = low - COEFFICIENT_MARGIN * width, high + COEFFICIENT_MARGIN * width
            self.scale_floor_ = float(max(0.0, SCALE_FLOOR_FRACTION * low[0]))
        return self

    def screen_transform(self, X) -> ScreenedFeatures:
        """Transform a batch without ever raising on finite input; report degenerate and out-of-range spectra."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        windowed = X[:, self.window_]
        n = windowed.shape[0]
        details = np.full(n, "", dtype=object)
        outside = np.zeros(n, dtype=bool)
        with np.errstate(all="ignore"):
            spread = windowed.std(axis=1)
            flat = ~(spread > self.spread_floor_)
            for i in np.flatnonzero(flat):
                details[i] = (f"nearly constant spectrum: spread {spread[i]:.3g} at or below the floor "
                              f"{self.spread_floor_:.3g} learnt from training")
            if self.emsc_ is not None:
                coefficients = windowed @ self.emsc_.pseudo_inverse_.T
                scale = coefficients[:, 0]
                for i in np.flatnonzero(~flat & (~(scale > self.scale_floor_) | ~np.isfinite(coefficients).all(axis=1))):
                    details[i] = (f"EMSC scale {scale[i]:.3g} is zero, negative or below {self.scale_floor_:.3g} (1 % of "
                                  "the smallest training scale): no usable signal, or a sign/units fault")
                if self.coefficient_low_ is not None:
                    outside = ((coefficients < self.coefficient_low_) | (coefficients > self.coefficient_high_)).any(axis=1)
            usable = details == ""
            features = np.zeros((n, self.n_model_channels))
            if usable.any():
                kept = windowed[usable]
                corrected = kept if self.emsc_ is None else self.emsc_.correct(kept, coefficients[usable])
                features[usable] = (corrected - self.scaler_.mean_) / self.scaler_.scale_
        overflow = ~np.isfinite(features).all(axis=1)
        details[overflow] = "preprocessed values overflow: the spectrum is far outside anything the model knows"
        features[overflow] = 0.0
        degenerate = details != ""
        return ScreenedFeatures(features, degenerate, details, outside & ~degenerate)

    def _correct(self, windowed: np.ndarray) -> np.ndarray:
        return windowed if self.emsc_ is None else self.emsc_.transform(windowed)

    def transform(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return self.scaler_.transform(self._correct(X[:, self.window_]))

    @property
    def n_model_channels(self) -> int:
        check_is_fitted(self)
        return self.window_.stop - self.window_.start

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Fitted state as (JSON-able scalars, arrays) for a model bundle."""
        check_is_fitted(self)
        scalars = {
            "grid": self.grid_.model_dump(),
            "first_nm": self.first_nm,
            "last_nm": self.last_nm,
            "window": [self.window_.start, self.window_.stop],
            "emsc_order": self.emsc_order,
            "scaler_mean": self.scaler_.mean_,
            "scaler_scale": self.scaler_.scale_,
            "spread_floor": self.spread_floor_,
            "scale_floor": self.scale_floor_,
        }
        arrays = {} if self.emsc_ is None else {"emsc_reference": self.emsc_.reference_}
        if self.coefficient_low_ is not None:
            arrays |= {"emsc_coefficient_low": self.coefficient_low_, "emsc_coefficient_high": self.coefficient_high_}
        return scalars, arrays

    @classmethod
    def from_state(cls, scalars: dict[str, Any], arrays: dict[str, np.ndarray]) -> SpectralPreprocessor:
        grid = WavelengthGrid.model_validate(scalars["grid"])
        self = cls(grid.wavelengths(), scalars["first_nm"], scalars["last_nm"], scalars["emsc_order"])
        self.grid_ = grid
        self.n_features_in_ = grid.count
        start, stop = scalars["window"]
        self.window_ = slice(int(start), int(stop))
        self.emsc_ = None
        if self.emsc_order is not None:
            reference = np.asarray(arrays["emsc_reference"], dtype=np.float64)
            if reference.shape != (stop - start,):
                raise ValueError(f"EMSC reference has {reference.size} channels, window has {stop - start}")
            # Fitting on the stored reference itself rebuilds the identical design and pseudo-inverse.
            self.emsc_ = EMSC(order=self.emsc_order, reference=reference).fit(reference[None, :])
        self.scaler_ = GlobalScaler()
        self.scaler_.mean_ = float(scalars["scaler_mean"])
        self.scaler_.scale_ = float(scalars["scaler_scale"])
        self.scaler_.n_features_in_ = stop - start
        # Bundles written before the input screen existed: only zero/negative scale and zero spread are degenerate.
        self.spread_floor_ = float(scalars.get("spread_floor", 0.0))
        self.scale_floor_ = float(scalars.get("scale_floor", 0.0))
        self.coefficient_low_ = arrays.get("emsc_coefficient_low")
        self.coefficient_high_ = arrays.get("emsc_coefficient_high")
        return self
