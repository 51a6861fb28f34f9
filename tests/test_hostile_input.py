"""Input that once stopped the worker: dark and constant spectra, sign faults, model-call failures,
huge originals. Unit level on the real tecator model and spectra; the worker-level tests are in
``test_worker_hostile.py``."""

import hashlib

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from nirstream.core.messages.codec import encode_json
from nirstream.core.errors import RejectReason
from nirstream.core.serving.predictor import Predictor
from nirstream.core.messages.common import WavelengthGrid
from nirstream.core.messages.dead_letter import DEAD_LETTER_ORIGINAL_LIMIT, DeadLetter
from nirstream.core.messages.spectrum import SpectrumHeader
from nirstream.stream.batch_processing import BatchPolicy, InboundRecord, dead_letter, process_batch

pytestmark = pytest.mark.reliability


@pytest.fixture(scope="module")
def predictor(template_registry):
    return Predictor(template_registry.load("1"))


def records_of(spectra, grid, start=0):
    return [InboundRecord("spectra", 0, start + i, b"line-1",
                          encode_json(SpectrumHeader(analyzer_id="line-1", sequence=start + i, grid=grid), x))
            for i, x in enumerate(spectra)]


def reasons_and_flags(result):
    reasons = {orjson.loads(raw)["source_offset"]: orjson.loads(raw)["reason"] for _, raw in result.dead_letters}
    flags = {orjson.loads(raw)["sequence"]: orjson.loads(raw)["outlier"]["flag"] for _, raw in result.predictions}
    return reasons, flags


def test_dark_constant_and_negated_spectra_are_degenerate(predictor, tecator):
    test = tecator.split("test").X
    x = test[list(predictor.predict(test).flags).index("ok")]  # a spectrum well inside the model's domain
    grid = WavelengthGrid.from_wavelengths(tecator.wavelengths)
    batch = [x, np.zeros_like(x), np.full_like(x, 3.2), -x, x.copy(), 10 * x, 0.001 * x]
    result = process_batch(records_of(batch, grid), predictor, BatchPolicy())
    reasons, flags = reasons_and_flags(result)
    assert reasons == {1: "degenerate", 2: "degenerate", 3: "degenerate", 6: "degenerate"}
    assert flags[0] == flags[4] == "ok"
    assert flags[5] == "outlier"  # ten times the signal: EMSC scale far outside the training range
    details = {orjson.loads(raw)["source_offset"]: orjson.loads(raw)["detail"] for _, raw in result.dead_letters}
    assert "constant" in details[2] and "EMSC scale" in details[3]


def test_screen_limits_come_from_training_and_accept_the_test_spectra(predictor, tecator):
    screened = predictor.bundle.preprocessor.screen_transform(tecator.split("test").X)
    assert not screened.degenerate.any()
    assert screened.outside.mean() < 0.1  # same instrument, same population: almost never outside the widened range
    prep = predictor.bundle.preprocessor
    assert prep.spread_floor_ > 0 and prep.scale_floor_ > 0
    assert prep.coefficient_low_[0] < 1 < prep.coefficient_high_[0]  # reference = mean training spectrum: scale ~ 1


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_predictor_never_raises_on_finite_arrays(predictor, tecator, data):
    n = data.draw(st.integers(1, 9))
    kind = data.draw(st.sampled_from(["arbitrary", "scaled", "constant", "spiky"]))
    if kind == "arbitrary":
        batch = data.draw(arrays(np.float64, (n, tecator.X.shape[1]),
                                 elements=st.floats(-1e300, 1e300, allow_nan=False, allow_infinity=False)))
    elif kind == "scaled":
        rows = tecator.X[data.draw(st.lists(st.integers(0, tecator.n_samples - 1), min_size=n, max_size=n))]
        scale = data.draw(st.floats(-1e200, 1e200, allow_nan=False))
        batch = rows * scale + data.draw(st.floats(-1e200, 1e200, allow_nan=False))
    elif kind == "constant":
        batch = np.full((n, tecator.X.shape[1]), data.draw(st.floats(-1e300, 1e300, allow_nan=False)))
    else:
        batch = np.repeat(tecator.X[:1], n, axis=0)
        batch[:, data.draw(st.integers(0, tecator.X.shape[1] - 1))] = data.draw(st.floats(-1e300, 1e300, allow_nan=False))
    if not np.isfinite(batch).all():
        return  # arithmetic above overflowed: the decoder refuses non-finite values before they get here
    prediction = predictor.predict(batch)
    usable = np.array([not d for d in prediction.degenerate])
    assert len(prediction.degenerate) == n
    assert np.isnan(prediction.values[~usable]).all()
    grid = WavelengthGrid.from_wavelengths(tecator.wavelengths)
    result = process_batch(records_of(batch, grid), predictor, BatchPolicy())
    assert len(result.predictions) + len(result.dead_letters) == n
    for _, raw in result.predictions:
        assert all(isinstance(v, float) for v in orjson.loads(raw)["predictions"].values())  # finite: orjson writes null otherwise


class FailsOnMarkedSpectra(Predictor):
    """The real predictor, except that a batch containing a marked spectrum raises (as a library bug would)."""

    MARK = 12345.678

    def predict(self, spectra, analyzers=None):
        if (np.asarray(spectra)[:, 0] == self.MARK).any():
            raise FloatingPointError("simulated failure inside the model call")
        return super().predict(spectra, analyzers)


def test_a_failing_model_call_is_isolated_to_its_culprits(template_registry, tecator):
    predictor = FailsOnMarkedSpectra(template_registry.load("1"))
    spectra = tecator.split("test").X[:20].copy()
    spectra[[3, 17], 0] = FailsOnMarkedSpectra.MARK
    grid = WavelengthGrid.from_wavelengths(tecator.wavelengths)
    result = process_batch(records_of(spectra, grid), predictor, BatchPolicy())
    reasons, flags = reasons_and_flags(result)
    assert reasons == {3: "processing_error", 17: "processing_error"}
    assert "simulated failure" in orjson.loads(result.dead_letters[0][1])["detail"]
    assert sorted(flags) == [i for i in range(20) if i not in (3, 17)]
    assert result.isolations >= 2
    # identical to predicting the good spectra in one call: isolation changes no number
    good = np.delete(spectra, [3, 17], axis=0)
    expected = Predictor(template_registry.load("1")).predict(good).values[:, 0]
    online = [orjson.loads(raw)["predictions"]["fat"] for _, raw in result.predictions]
    np.testing.assert_array_equal(online, expected)


def test_a_huge_original_travels_as_prefix_length_and_checksum():
    original = b"NIRS" + bytes(range(256)) * 20_000  # 5 MB
    raw = dead_letter(InboundRecord("spectra", 2, 7, b"line-1", original), RejectReason.OVERSIZE, "too big", "w")
    assert len(raw) < 2 * DEAD_LETTER_ORIGINAL_LIMIT
    letter = DeadLetter.model_validate_json(raw)
    assert letter.original_truncated and letter.original_bytes == len(original)
    assert letter.original_sha256 == hashlib.sha256(original).hexdigest()
    small = DeadLetter.model_validate_json(dead_letter(InboundRecord("spectra", 2, 8, None, b"abc"),
                                                        RejectReason.UNKNOWN_FORMAT, "x", "w"))
    assert not small.original_truncated and small.original_bytes == 3
