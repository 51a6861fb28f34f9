"""The wavelength region the model sees: a contiguous run of channels chosen by wavelength."""

from __future__ import annotations

from numbers import Real

import numpy as np

from nirstream.core.chemometrics.fitted.steps import Window
from nirstream.core.chemometrics.steps.step import SpectralStep


class WavelengthWindow(SpectralStep):
    """Keep the channels whose wavelengths lie in ``[first_nm, last_nm]``.

    Parameters
    ----------
    wavelengths : array of shape (n_channels,) or None
        The input grid; None numbers the channels 1, 2, ...
    first_nm, last_nm : float or None
        Inclusive limits; open on that side when None.

    Attributes
    ----------
    wavelengths_ : ndarray of shape (n_channels,) -- the input grid
    start_, stop_ : int -- the channels kept, ``X[:, start_:stop_]``
    """

    _parameter_constraints: dict = {"wavelengths": ["array-like", None], "first_nm": [Real, None], "last_nm": [Real, None]}

    fitted_class = Window

    def __init__(self, wavelengths=None, first_nm: float | None = None, last_nm: float | None = None):
        self.wavelengths = wavelengths
        self.first_nm = first_nm
        self.last_nm = last_nm

    def _learn(self, X):
        n = X.shape[1]
        wl = np.arange(1.0, n + 1) if self.wavelengths is None else np.asarray(self.wavelengths, dtype=float)
        if wl.size != n:
            raise ValueError(f"wavelengths has {wl.size} entries but X has {n} channels")
        keep = np.flatnonzero((wl >= (self.first_nm or -np.inf)) & (wl <= (self.last_nm or np.inf)))
        if keep.size < 2:
            raise ValueError(f"window {self.first_nm}-{self.last_nm} nm keeps {keep.size} of n_features = {n} "
                             "channels; need at least 2")
        self.wavelengths_ = wl
        self.start_, self.stop_ = int(keep[0]), int(keep[-1]) + 1
