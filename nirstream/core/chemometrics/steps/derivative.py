"""Savitzky–Golay derivative: removes offsets (1st) and linear baselines (2nd) and sharpens overlapping bands."""

from __future__ import annotations

from numbers import Integral

from sklearn.base import OneToOneFeatureMixin
from sklearn.utils._param_validation import Interval

from nirstream.core.chemometrics.fitted.steps import SavitzkyGolay
from nirstream.core.chemometrics.steps.step import SpectralStep


class SavitzkyGolayDerivative(OneToOneFeatureMixin, SpectralStep):
    """Derivative of a local polynomial fit over ``window_length`` channels, per spectrum.

    Parameters
    ----------
    deriv : {1, 2}, default=1
    window_length : int, default=11
        Channels per fit (odd); narrowed to a quarter of the channels on short grids, at least ``polyorder + 2``.
    polyorder : int, default=2
        Quadratic: the usual choice for NIR band shapes.

    Attributes
    ----------
    window_length_ : int -- the odd window used
    """

    _parameter_constraints: dict = {
        "deriv": [Interval(Integral, 1, 2, closed="both")],
        "window_length": [Interval(Integral, 3, None, closed="left")],
        "polyorder": [Interval(Integral, 1, None, closed="left")],
    }

    fitted_class = SavitzkyGolay  # SciPy's savgol_filter(mode="interp"), in NumPy

    def __init__(self, deriv: int = 1, window_length: int = 11, polyorder: int = 2):
        self.deriv = deriv
        self.window_length = window_length
        self.polyorder = polyorder

    def _learn(self, X):
        n = X.shape[1]
        window = min(self.window_length, max(self.polyorder + 2, n // 4))
        self.window_length_ = window if window % 2 else window - 1 if window - 1 > self.polyorder else window + 1
        if n < self.window_length_:
            raise ValueError(f"a Savitzky–Golay derivative needs at least {self.window_length_} channels; the window "
                             f"keeps n_features = {n}")
