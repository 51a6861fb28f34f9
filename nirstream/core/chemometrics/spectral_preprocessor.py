"""The one preprocessing chain both the trainer and the worker run:
channel window -> Savitzky–Golay derivative -> SNV -> EMSC -> global scaling (each optional but the window and scaling).

Its fitted state is plain numbers and arrays (``state``/``from_state``), so a model bundle
stores it without pickles and the worker rebuilds exactly what the trainer fitted.
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from nirstream.core.chemometrics.preprocessing import EMSC, GlobalScaler
from nirstream.core.messages.common import WavelengthGrid


# How the input screen's limits come from the training spectra (see ``learn_input_range``):
SPREAD_FLOOR_FRACTION = 0.01  # flatter than 1 % of the flattest training spectrum: nearly constant
SCALE_FLOOR_FRACTION = 0.01  # EMSC scale below 1 % of the smallest training scale: no usable signal
COEFFICIENT_MARGIN = 0.5  # EMSC coefficients beyond the training range widened by half its width: outlier
SMOOTHING_POLYORDER = 2  # Savitzky–Golay polynomial order (quadratic: the usual choice for NIR band shapes)


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
    """Select a wavelength window, optionally differentiate, SNV- and/or EMSC-correct, then scale globally.

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
    derivative : int or None, default=None
        Savitzky–Golay derivative order (1 or 2; quadratic polynomial over ``smoothing_window`` channels);
        None skips it. Removes offsets (1st) and linear baselines (2nd) and sharpens overlapping bands.
    snv : bool, default=False
        Standard normal variate: centre and scale each spectrum by its own mean and standard deviation.
    smoothing_window : int, default=11
        Savitzky–Golay window in channels (odd; narrowed to a quarter of the window's channels on short grids).
    centring : {"spectrum", "global"}, default="spectrum"
        What the final scaling subtracts: the mean training spectrum (sample-to-sample differences at unit size)
        or one mean for the whole matrix (the paper's global scaling). See ``GlobalScaler``.

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
        "derivative": [Interval(Integral, 1, 2, closed="both"), None],
        "snv": ["boolean"],
        "smoothing_window": [Interval(Integral, 3, None, closed="left")],
        "centring": [StrOptions({"spectrum", "global"})],
    }

    def __init__(self, wavelengths=None, first_nm: float | None = None, last_nm: float | None = None,
                 emsc_order: int | None = 2, derivative: int | None = None, snv: bool = False,
                 smoothing_window: int = 11, centring: str = "spectrum"):
        self.wavelengths = wavelengths
        self.first_nm = first_nm
        self.last_nm = last_nm
        self.emsc_order = emsc_order
        self.derivative = derivative
        self.snv = snv
        self.smoothing_window = smoothing_window
        self.centring = centring

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
        self.smoothing_window_ = self._fitted_smoothing_window(keep.size)
        if self.derivative is not None and keep.size < self.smoothing_window_:
            raise ValueError(f"a Savitzky–Golay derivative needs at least {self.smoothing_window_} channels; the window "
                             f"keeps {keep.size} of n_features = {X.shape[1]}")
        pretreated = self._pretreat(X[:, self.window_])
        self.emsc_ = None if self.emsc_order is None else EMSC(order=self.emsc_order).fit(pretreated)
        self.scaler_ = GlobalScaler(self.centring).fit(self._correct(pretreated))
        return self.learn_input_range(X)

    def _fitted_smoothing_window(self, n_channels: int) -> int:
        """The odd Savitzky–Golay window that fits the model's channels (at least polyorder + 2)."""
        window = min(self.smoothing_window, max(SMOOTHING_POLYORDER + 2, n_channels // 4))
        return window if window % 2 else window - 1 if window - 1 > SMOOTHING_POLYORDER else window + 1

    def _differentiate(self, windowed: np.ndarray) -> np.ndarray:
        if self.derivative is None:
            return windowed
        from scipy.signal import savgol_filter  # only derivative pretreatments need it: a lighter cold start otherwise

        return savgol_filter(windowed, self.smoothing_window_, SMOOTHING_POLYORDER, deriv=self.derivative, axis=1,
                             mode="interp")

    def _pretreat(self, windowed: np.ndarray) -> np.ndarray:
        """Derivative then SNV, per spectrum (nothing learnt)."""
        return self._snv(self._differentiate(windowed))

    def _snv(self, spectra: np.ndarray) -> np.ndarray:
        """SNV if asked; a spectrum with no variation left gets NaN (screened)."""
        if not self.snv:
            return spectra
        spread = spectra.std(axis=1, keepdims=True)
        with np.errstate(all="ignore"):
            return (spectra - spectra.mean(axis=1, keepdims=True)) / np.where(spread > 0, spread, np.nan)

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
        differentiated = self._differentiate(windowed)
        # A straight line has no 2nd derivative (and a constant no 1st): nothing left for SNV or the model.
        self.derivative_floor_ = (0.0 if self.derivative is None else
                                  float(SPREAD_FLOOR_FRACTION * differentiated.std(axis=1).min()))
        self.scale_floor_ = 0.0
        self.coefficient_low_ = self.coefficient_high_ = None
        if self.emsc_ is not None:
            coefficients = self.emsc_.coefficients(self._snv(differentiated))
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
            differentiated = self._differentiate(windowed)
            if self.derivative is not None:
                derivative_spread = differentiated.std(axis=1)
                lost = ~flat & ~(derivative_spread > self.derivative_floor_)
                for i in np.flatnonzero(lost):
                    details[i] = (f"no band structure: spread {derivative_spread[i]:.3g} of the derivative at or below the "
                                  f"floor {self.derivative_floor_:.3g} learnt from training (a straight or constant spectrum)")
                flat |= lost
            pretreated = self._snv(differentiated)
            if self.emsc_ is not None:
                coefficients = pretreated @ self.emsc_.pseudo_inverse_.T
                scale = coefficients[:, 0]
                for i in np.flatnonzero(~flat & (~(scale > self.scale_floor_) | ~np.isfinite(coefficients).all(axis=1))):
                    details[i] = (f"EMSC scale {scale[i]:.3g} is zero, negative or below {self.scale_floor_:.3g} (1 % of "
                                  "the smallest training scale): no usable signal, or a sign/units fault")
                if self.coefficient_low_ is not None:
                    outside = ((coefficients < self.coefficient_low_) | (coefficients > self.coefficient_high_)).any(axis=1)
            usable = details == ""
            features = np.zeros((n, self.n_model_channels))
            if usable.any():
                kept = pretreated[usable]
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
        return self.scaler_.transform(self._correct(self._pretreat(X[:, self.window_])))

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
            "derivative": self.derivative,
            "snv": self.snv,
            "smoothing_window": self.smoothing_window_,
            "centring": self.centring,
            "scaler_mean": self.scaler_.mean_ if self.centring == "global" else None,
            "scaler_scale": self.scaler_.scale_,
            "spread_floor": self.spread_floor_,
            "derivative_floor": self.derivative_floor_,
            "scale_floor": self.scale_floor_,
        }
        arrays = {} if self.emsc_ is None else {"emsc_reference": self.emsc_.reference_}
        if self.centring == "spectrum":
            arrays["scaler_mean_spectrum"] = self.scaler_.mean_
        if self.coefficient_low_ is not None:
            arrays |= {"emsc_coefficient_low": self.coefficient_low_, "emsc_coefficient_high": self.coefficient_high_}
        return scalars, arrays

    @classmethod
    def from_state(cls, scalars: dict[str, Any], arrays: dict[str, np.ndarray]) -> SpectralPreprocessor:
        grid = WavelengthGrid.model_validate(scalars["grid"])
        # Bundles written before the derivative and SNV existed have neither.
        self = cls(grid.wavelengths(), scalars["first_nm"], scalars["last_nm"], scalars["emsc_order"],
                   derivative=scalars.get("derivative"), snv=bool(scalars.get("snv", False)),
                   smoothing_window=int(scalars.get("smoothing_window", 11)),
                   centring=scalars.get("centring", "global"))  # earlier bundles: the paper's global scaling
        self.grid_ = grid
        self.n_features_in_ = grid.count
        start, stop = scalars["window"]
        self.window_ = slice(int(start), int(stop))
        self.smoothing_window_ = self.smoothing_window
        self.emsc_ = None
        if self.emsc_order is not None:
            reference = np.asarray(arrays["emsc_reference"], dtype=np.float64)
            if reference.shape != (stop - start,):
                raise ValueError(f"EMSC reference has {reference.size} channels, window has {stop - start}")
            # Fitting on the stored reference itself rebuilds the identical design and pseudo-inverse.
            self.emsc_ = EMSC(order=self.emsc_order, reference=reference).fit(reference[None, :])
        self.scaler_ = GlobalScaler(self.centring)
        if self.centring == "spectrum":
            self.scaler_.mean_ = np.asarray(arrays["scaler_mean_spectrum"], dtype=np.float64)
            if self.scaler_.mean_.shape != (stop - start,):
                raise ValueError(f"mean spectrum has {self.scaler_.mean_.size} channels, window has {stop - start}")
        else:
            self.scaler_.mean_ = float(scalars["scaler_mean"])
        self.scaler_.scale_ = float(scalars["scaler_scale"])
        self.scaler_.n_features_in_ = stop - start
        # Bundles written before the input screen existed: only zero/negative scale and zero spread are degenerate.
        self.spread_floor_ = float(scalars.get("spread_floor", 0.0))
        self.scale_floor_ = float(scalars.get("scale_floor", 0.0))
        self.derivative_floor_ = float(scalars.get("derivative_floor", 0.0))
        self.coefficient_low_ = arrays.get("emsc_coefficient_low")
        self.coefficient_high_ = arrays.get("emsc_coefficient_high")
        return self
