"""The one preprocessing chain both the trainer and the worker run:
channel window -> Savitzky–Golay derivative -> SNV -> EMSC -> global scaling (each optional but the window and scaling).

The steps are small transformers (``nirstream.core.chemometrics.steps``) in a ``Pipeline``; the input screen
(``input_screen``) walks the same fitted steps. The fitted state is each step's parameters and fitted attributes
(``state``/``from_state``), so a model bundle stores it without pickles and the worker rebuilds exactly what the
trainer fitted: as ``fitted.preprocessing.FittedPreprocessing``, the same arithmetic without scikit-learn.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.pipeline import Pipeline
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from nirstream.core.chemometrics.estimator_state import estimator_state, fitted_state, fitted_values, restore_estimator
from nirstream.core.chemometrics.first_preprocessor_state import steps_format
from nirstream.core.chemometrics.fitted.preprocessing import FittedPreprocessing
from nirstream.core.chemometrics.input_screen import InputScreen, ScreenedFeatures
from nirstream.core.chemometrics.steps.derivative import SavitzkyGolayDerivative
from nirstream.core.chemometrics.steps.emsc import EMSC
from nirstream.core.chemometrics.steps.scaling import GlobalScaler
from nirstream.core.chemometrics.steps.snv import SNV
from nirstream.core.chemometrics.steps.window import WavelengthWindow
from nirstream.core.messages.common import WavelengthGrid

__all__ = ["ScreenedFeatures", "SpectralPreprocessor"]

def _screen_limit(name: str) -> property:
    return property(lambda self: getattr(self.screen_, name), doc=f"The input screen's ``{name}``.")


STEP_CLASSES = {cls.__name__: cls for cls in (WavelengthWindow, SavitzkyGolayDerivative, SNV, EMSC, GlobalScaler)}


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
    steps_ : Pipeline       -- the fitted steps: window, [derivative], [snv], [emsc], scaling
    screen_ : InputScreen   -- the input screen's limits (also as ``spread_floor_``, ``scale_floor_``... below)
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
        self.first_nm, self.last_nm = first_nm, last_nm
        self.emsc_order = emsc_order
        self.derivative, self.smoothing_window = derivative, smoothing_window  # the Savitzky–Golay step's
        self.snv = snv
        self.centring = centring

    def _unfitted_steps(self) -> Pipeline:
        steps = [("window", WavelengthWindow(self.wavelengths, self.first_nm, self.last_nm))]
        if self.derivative is not None:
            steps.append(("derivative", SavitzkyGolayDerivative(self.derivative, self.smoothing_window)))
        if self.snv:
            steps.append(("snv", SNV()))
        if self.emsc_order is not None:
            steps.append(("emsc", EMSC(order=self.emsc_order)))
        steps.append(("scaling", GlobalScaler(self.centring)))
        return Pipeline(steps)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        X = validate_data(self, X, dtype=np.float64)
        self.steps_ = self._unfitted_steps().fit(X)
        self.grid_ = WavelengthGrid.from_wavelengths(self.steps_["window"].wavelengths_)
        return self.learn_input_range(X)

    def learn_input_range(self, X) -> SpectralPreprocessor:
        """Set the input screen's limits from training spectra ``X`` (input grid, not augmented); see ``InputScreen``."""
        check_is_fitted(self, "steps_")
        self.screen_ = InputScreen(self.steps_).fit(np.asarray(X, dtype=np.float64))
        return self

    def transform(self, X):
        check_is_fitted(self)
        return self.steps_.transform(validate_data(self, X, dtype=np.float64, reset=False))

    def screen_transform(self, X) -> ScreenedFeatures:
        """Transform a batch without ever raising on finite input; report degenerate and out-of-range spectra."""
        check_is_fitted(self)
        return self.screen_.screen(validate_data(self, X, dtype=np.float64, reset=False))

    @property
    def n_model_channels(self) -> int:
        check_is_fitted(self)
        window = self.steps_["window"]
        return window.stop_ - window.start_

    @property
    def scaler_(self) -> GlobalScaler:
        return self.steps_["scaling"]

    # The input screen's limits, read as the preprocessor's own.
    spread_floor_ = _screen_limit("spread_floor_")
    derivative_floor_ = _screen_limit("derivative_floor_")
    scale_floor_ = _screen_limit("scale_floor_")
    coefficient_low_ = _screen_limit("coefficient_low_")
    coefficient_high_ = _screen_limit("coefficient_high_")

    def fitted(self) -> FittedPreprocessing:
        """The fitted chain as the worker holds it (NumPy only), built from these fitted steps and limits."""
        check_is_fitted(self)
        params = {k: v for k, v in self.get_params(deep=False).items() if k != "wavelengths"}
        return FittedPreprocessing(self.grid_, params, [(name, step.fitted()) for name, step in self.steps_.steps],
                                   self.screen_.limits())

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Fitted state as (JSON-able scalars, arrays) for a model bundle: parameters and fitted attributes of
        the preprocessor, each step and the input screen."""
        check_is_fitted(self)
        arrays: dict[str, np.ndarray] = {}
        params = {k: v for k, v in self.get_params(deep=False).items() if k != "wavelengths"}  # the grid says them
        scalars = {"grid": self.grid_.model_dump(), "params": params,
                   "steps": [{"name": name} | estimator_state(step, name, arrays) for name, step in self.steps_.steps],
                   "screen": fitted_state(self.screen_, "screen", arrays)}  # its one parameter: the steps
        return scalars, arrays

    @classmethod
    def from_state(cls, scalars: dict[str, Any], arrays: dict[str, np.ndarray]) -> SpectralPreprocessor:
        """The fitted preprocessor ``state`` described; bundles written before the steps (no ``steps`` key) too."""
        scalars, arrays = steps_format(scalars, arrays)
        grid, params = WavelengthGrid.model_validate(scalars["grid"]), scalars["params"]
        steps = [(s["name"], restore_estimator(s, s["name"], arrays, STEP_CLASSES)) for s in scalars["steps"]]
        screen = fitted_values(scalars["screen"], "screen", arrays)
        self = cls(grid.wavelengths(), **params)
        self.grid_, self.n_features_in_ = grid, grid.count
        self.steps_ = Pipeline(steps)
        self.screen_ = InputScreen(self.steps_)
        for name, value in screen.items():
            setattr(self.screen_, name, value)
        return self
