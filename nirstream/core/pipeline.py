"""The one preprocessing chain both the trainer and the worker run: channel window -> EMSC -> global scaling.

Its fitted state is plain numbers and arrays (``state``/``from_state``), so a model bundle
stores it without pickles and the worker rebuilds exactly what the trainer fitted.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from nirstream.core.preprocessing import EMSC, GlobalScaler
from nirstream.core.schemas import WavelengthGrid


class SpectralPreprocessor(TransformerMixin, BaseEstimator):
    """Select a wavelength window, optionally EMSC-correct, then scale globally.

    Parameters
    ----------
    wavelengths : array of shape (n_channels,)
        The input grid (what analyzers send), evenly spaced.
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
    """

    def __init__(self, wavelengths, first_nm: float | None = None, last_nm: float | None = None, emsc_order: int | None = 2):
        self.wavelengths = wavelengths
        self.first_nm = first_nm
        self.last_nm = last_nm
        self.emsc_order = emsc_order

    def fit(self, X, y=None):
        X = validate_data(self, X, dtype=np.float64)
        self.grid_ = WavelengthGrid.from_wavelengths(self.wavelengths)
        if self.grid_.count != X.shape[1]:
            raise ValueError(f"wavelengths has {self.grid_.count} entries but X has {X.shape[1]} channels")
        wl = np.asarray(self.wavelengths, dtype=float)
        keep = np.flatnonzero((wl >= (self.first_nm or -np.inf)) & (wl <= (self.last_nm or np.inf)))
        if keep.size < 4:
            raise ValueError(f"window {self.first_nm}-{self.last_nm} nm keeps {keep.size} channels; need at least 4")
        self.window_ = slice(int(keep[0]), int(keep[-1]) + 1)
        windowed = X[:, self.window_]
        self.emsc_ = None if self.emsc_order is None else EMSC(order=self.emsc_order).fit(windowed)
        self.scaler_ = GlobalScaler().fit(self._correct(windowed))
        return self

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
        }
        arrays = {} if self.emsc_ is None else {"emsc_reference": self.emsc_.reference_}
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
        return self
