"""The preprocessing rebuilt of steps gives what the hand-built chain gave (saved from it at f381ebe by
tests/data/make_preprocessing_before_steps.py, on tecator), and bundles in that chain's state format still load.
Bit for bit, but for the Savitzky–Golay variants: SciPy computed those then, NumPy now (``fitted/savitzky_golay.py``),
equal to float rounding."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from nirstream.core.chemometrics.fitted.preprocessing import FittedPreprocessing
from nirstream.core.chemometrics.spectral_preprocessor import SpectralPreprocessor

DATA = Path(__file__).parent / "data"
BEFORE = json.loads((DATA / "preprocessing_before_steps.json").read_text())


@pytest.fixture(scope="module")
def before():
    with np.load(DATA / "preprocessing_before_steps.npz", allow_pickle=False) as npz:
        return {key: npz[key] for key in npz.files}


def _reason(detail: str) -> str:
    return re.sub(r"-?\d[\d.e+-]*", "#", detail)


def _assert_same_outputs(preprocessor, before, name):
    inputs = before["inputs"]  # ten hostile spectra (constant, negated, straight, huge...), then twelve test spectra
    rounding = 1e-9 if BEFORE[name]["params"].get("derivative") else 0.0
    np.testing.assert_allclose(preprocessor.transform(inputs[10:]), before[f"{name}.transform"], rtol=rounding, atol=rounding)
    screened = preprocessor.screen_transform(inputs)
    # The alternating 1e300 spectrum's derivative is a sum whose terms cancel exactly: what is left is rounding noise
    # (~1e284) in either implementation, so its features are compared only where nothing is rounded away.
    rows = np.abs(inputs).max(axis=1) < 1e100 if rounding else slice(None)
    np.testing.assert_allclose(screened.features[rows], before[f"{name}.features"][rows], rtol=rounding, atol=rounding)
    np.testing.assert_array_equal(screened.degenerate, before[f"{name}.degenerate"])
    np.testing.assert_array_equal(screened.outside, before[f"{name}.outside"])
    if rounding:  # a straight spectrum's derivative is rounding noise (1e-17): compare the reasons, not its figures
        assert [_reason(d) for d in screened.details] == [_reason(d) for d in BEFORE[name]["details"]]
    else:
        assert screened.details.tolist() == BEFORE[name]["details"]


@pytest.mark.parametrize("name", sorted(BEFORE))
def test_the_steps_fit_and_transform_as_the_hand_built_chain_did(tecator, before, name):
    fitted = SpectralPreprocessor(tecator.wavelengths, **BEFORE[name]["params"]).fit(tecator.split("train").X)
    _assert_same_outputs(fitted, before, name)
    _assert_same_outputs(SpectralPreprocessor.from_state(*fitted.state()), before, name)


@pytest.mark.parametrize("name", sorted(BEFORE))
def test_a_state_written_by_the_hand_built_chain_still_loads(before, name):
    prefix = f"{name}.state."
    arrays = {k[len(prefix):]: v for k, v in before.items() if k.startswith(prefix)}
    _assert_same_outputs(SpectralPreprocessor.from_state(BEFORE[name]["state"], arrays), before, name)
    _assert_same_outputs(FittedPreprocessing.from_state(BEFORE[name]["state"], arrays), before, name)  # the worker's


def test_the_state_is_each_steps_parameters_and_fitted_attributes(tecator):
    scalars, arrays = SpectralPreprocessor(tecator.wavelengths, derivative=1, snv=True).fit(tecator.X).state()
    assert [s["name"] for s in scalars["steps"]] == ["window", "derivative", "snv", "emsc", "scaling"]
    derivative = scalars["steps"][1]
    assert derivative["params"] == {"deriv": 1, "window_length": 11, "polyorder": 2} and derivative["fitted"]["window_length_"] == 11
    assert {"emsc.reference_", "emsc.pseudo_inverse_", "scaling.mean_", "screen.coefficient_low_"} <= arrays.keys()
    json.dumps(scalars)  # bundle.json holds it
