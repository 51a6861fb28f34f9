"""The preprocessing state bundles held before the chain was built of steps: named scalars (``window``,
``emsc_order``, ``scaler_scale``, ``spread_floor``...) and arrays (``emsc_reference``, ``scaler_mean_spectrum``,
``emsc_coefficient_low``...). Read here into the steps those bundles were fitted as, so old bundles still serve."""

from __future__ import annotations

from typing import Any

import numpy as np

from nirstream.core.chemometrics.steps.derivative import SavitzkyGolayDerivative
from nirstream.core.chemometrics.steps.emsc import EMSC
from nirstream.core.chemometrics.steps.scaling import GlobalScaler
from nirstream.core.chemometrics.steps.snv import SNV
from nirstream.core.chemometrics.steps.window import WavelengthWindow
from nirstream.core.messages.common import WavelengthGrid


def read_first_state(scalars: dict[str, Any], arrays: dict[str, np.ndarray]):
    """``(grid, SpectralPreprocessor parameters, fitted (name, step) list, input screen attributes)``."""
    grid = WavelengthGrid.model_validate(scalars["grid"])
    start, stop = (int(i) for i in scalars["window"])
    n = stop - start
    # Bundles written before the derivative and SNV existed have neither; before spectrum centring, global scaling.
    params = {"first_nm": scalars["first_nm"], "last_nm": scalars["last_nm"], "emsc_order": scalars["emsc_order"],
              "derivative": scalars.get("derivative"), "snv": bool(scalars.get("snv", False)),
              "smoothing_window": int(scalars.get("smoothing_window", 11)), "centring": scalars.get("centring", "global")}
    window = _fitted(WavelengthWindow(grid.wavelengths(), params["first_nm"], params["last_nm"]), grid.count,
                     wavelengths_=grid.wavelengths(), start_=start, stop_=stop)
    steps = [("window", window)]
    if params["derivative"] is not None:
        derivative = SavitzkyGolayDerivative(params["derivative"], params["smoothing_window"])
        steps.append(("derivative", _fitted(derivative, n, window_length_=params["smoothing_window"])))
    if params["snv"]:
        steps.append(("snv", _fitted(SNV(), n)))
    if params["emsc_order"] is not None:
        reference = np.asarray(arrays["emsc_reference"], dtype=np.float64)
        if reference.shape != (n,):
            raise ValueError(f"EMSC reference has {reference.size} channels, window has {n}")
        # Fitting on the stored reference itself rebuilds the identical design and pseudo-inverse.
        steps.append(("emsc", EMSC(order=params["emsc_order"], reference=reference).fit(reference[None, :])))
    if params["centring"] == "spectrum":
        mean = np.asarray(arrays["scaler_mean_spectrum"], dtype=np.float64)
        if mean.shape != (n,):
            raise ValueError(f"mean spectrum has {mean.size} channels, window has {n}")
    else:
        mean = float(scalars["scaler_mean"])
    steps.append(("scaling", _fitted(GlobalScaler(params["centring"]), n, mean_=mean, scale_=float(scalars["scaler_scale"]))))
    # Bundles written before the input screen existed: only zero/negative scale and zero spread are degenerate.
    screen = {"spread_floor_": float(scalars.get("spread_floor", 0.0)), "scale_floor_": float(scalars.get("scale_floor", 0.0)),
              "derivative_floor_": float(scalars.get("derivative_floor", 0.0)),
              "coefficient_low_": arrays.get("emsc_coefficient_low"), "coefficient_high_": arrays.get("emsc_coefficient_high")}
    return grid, params, steps, screen


def _fitted(step, n_features_in: int, **attributes):
    step.n_features_in_ = n_features_in
    for name, value in attributes.items():
        setattr(step, name, value)
    return step
