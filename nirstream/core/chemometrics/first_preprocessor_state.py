"""The preprocessing state bundles held before the chain was built of steps: named scalars (``window``,
``emsc_order``, ``scaler_scale``, ``spread_floor``...) and arrays (``emsc_reference``, ``scaler_mean_spectrum``,
``emsc_coefficient_low``...). Rewritten here, NumPy only, into the steps format (``SpectralPreprocessor.state``)
those bundles would have had, so old bundles still serve and every loader reads one format."""

from __future__ import annotations

from typing import Any

import numpy as np

from nirstream.core.chemometrics.fitted.steps import emsc_design
from nirstream.core.messages.common import WavelengthGrid


def steps_format(scalars: dict[str, Any], arrays: dict[str, np.ndarray]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """``(scalars, arrays)`` in the steps format: unchanged when they already are, else rewritten from the first."""
    if "steps" in scalars:
        return scalars, arrays
    grid = WavelengthGrid.model_validate(scalars["grid"])
    start, stop = (int(i) for i in scalars["window"])
    n = stop - start
    # Bundles written before the derivative and SNV existed have neither; before spectrum centring, global scaling.
    params = {"first_nm": scalars["first_nm"], "last_nm": scalars["last_nm"], "emsc_order": scalars["emsc_order"],
              "derivative": scalars.get("derivative"), "snv": bool(scalars.get("snv", False)),
              "smoothing_window": int(scalars.get("smoothing_window", 11)), "centring": scalars.get("centring", "global")}
    out: dict[str, np.ndarray] = {"window.params.wavelengths": grid.wavelengths(), "window.wavelengths_": grid.wavelengths()}
    steps = [_step("window", "WavelengthWindow", {"first_nm": params["first_nm"], "last_nm": params["last_nm"]},
                   {"start_": start, "stop_": stop, "n_features_in_": grid.count})]
    if params["derivative"] is not None:
        steps.append(_step("derivative", "SavitzkyGolayDerivative",
                           {"deriv": params["derivative"], "window_length": params["smoothing_window"], "polyorder": 2},
                           {"window_length_": params["smoothing_window"], "n_features_in_": n}))
    if params["snv"]:
        steps.append(_step("snv", "SNV", {}, {"n_features_in_": n}))
    if params["emsc_order"] is not None:
        reference = np.asarray(arrays["emsc_reference"], dtype=np.float64)
        if reference.shape != (n,):
            raise ValueError(f"EMSC reference has {reference.size} channels, window has {n}")
        design = emsc_design(reference, params["emsc_order"])  # what fitting on the reference itself builds
        out |= {"emsc.params.reference": reference, "emsc.reference_": reference, "emsc.design_": design,
                "emsc.pseudo_inverse_": np.linalg.pinv(design)}
        steps.append(_step("emsc", "EMSC", {"order": params["emsc_order"], "interferents": None, "wavelengths": None},
                           {"n_features_in_": n}))
    scaling_fitted: dict[str, Any] = {"scale_": float(scalars["scaler_scale"]), "n_features_in_": n}
    if params["centring"] == "spectrum":
        mean = np.asarray(arrays["scaler_mean_spectrum"], dtype=np.float64)
        if mean.shape != (n,):
            raise ValueError(f"mean spectrum has {mean.size} channels, window has {n}")
        out["scaling.mean_"] = mean
    else:
        scaling_fitted["mean_"] = float(scalars["scaler_mean"])
    steps.append(_step("scaling", "GlobalScaler", {"centring": params["centring"]}, scaling_fitted))
    # Bundles written before the input screen existed: only zero/negative scale and zero spread are degenerate.
    screen = {"spread_floor_": float(scalars.get("spread_floor", 0.0)), "scale_floor_": float(scalars.get("scale_floor", 0.0)),
              "derivative_floor_": float(scalars.get("derivative_floor", 0.0))}
    for name in ("low", "high"):
        if f"emsc_coefficient_{name}" in arrays:
            out[f"screen.coefficient_{name}_"] = np.asarray(arrays[f"emsc_coefficient_{name}"], dtype=np.float64)
        else:
            screen[f"coefficient_{name}_"] = None
    return {"grid": grid.model_dump(), "params": params, "steps": steps, "screen": screen}, out


def _step(name: str, class_name: str, params: dict[str, Any], fitted: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "class": class_name, "params": params, "fitted": fitted}
