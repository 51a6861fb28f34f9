"""The preprocessing rebuilt of steps gives what the hand-built chain gave (saved from it at f381ebe by
tests/data/make_preprocessing_before_steps.py, on tecator), and bundles in that chain's state format still load."""

import json
from pathlib import Path

import numpy as np
import pytest

from nirstream.core.chemometrics.spectral_preprocessor import SpectralPreprocessor

DATA = Path(__file__).parent / "data"
BEFORE = json.loads((DATA / "preprocessing_before_steps.json").read_text())


@pytest.fixture(scope="module")
def before():
    with np.load(DATA / "preprocessing_before_steps.npz", allow_pickle=False) as npz:
        return {key: npz[key] for key in npz.files}


def _assert_same_outputs(preprocessor, before, name):
    inputs = before["inputs"]  # ten hostile spectra (constant, negated, straight, huge...), then twelve test spectra
    np.testing.assert_array_equal(preprocessor.transform(inputs[10:]), before[f"{name}.transform"])
    screened = preprocessor.screen_transform(inputs)
    np.testing.assert_array_equal(screened.features, before[f"{name}.features"])
    np.testing.assert_array_equal(screened.degenerate, before[f"{name}.degenerate"])
    np.testing.assert_array_equal(screened.outside, before[f"{name}.outside"])
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


def test_the_state_is_each_steps_parameters_and_fitted_attributes(tecator):
    scalars, arrays = SpectralPreprocessor(tecator.wavelengths, derivative=1, snv=True).fit(tecator.X).state()
    assert [s["name"] for s in scalars["steps"]] == ["window", "derivative", "snv", "emsc", "scaling"]
    derivative = scalars["steps"][1]
    assert derivative["params"] == {"deriv": 1, "window_length": 11, "polyorder": 2} and derivative["fitted"]["window_length_"] == 11
    assert {"emsc.reference_", "emsc.pseudo_inverse_", "scaling.mean_", "screen.coefficient_low_"} <= arrays.keys()
    json.dumps(scalars)  # bundle.json holds it
