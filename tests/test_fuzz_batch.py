"""Hostile input through the batch processor (the worker's hot path): never an exception,
every message accounted for as exactly one prediction or one dead letter."""

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nirstream.core.messages.codec import encode_binary, encode_json
from nirstream.core.serving.predictor import Predictor
from nirstream.core.messages.common import WavelengthGrid
from nirstream.core.messages.spectrum import SpectrumHeader
from nirstream.stream.batch_processing import BatchPolicy, InboundRecord, process_batch

pytestmark = pytest.mark.reliability


@pytest.fixture(scope="module")
def predictor(template_registry):
    return Predictor(template_registry.load("1"))


@pytest.fixture(scope="module")
def good_messages(tecator):
    grid = WavelengthGrid.from_wavelengths(tecator.wavelengths)
    header = SpectrumHeader(analyzer_id="line-1", sequence=1, grid=grid)
    return [encode_json(header, tecator.X[0]), encode_binary(header, tecator.X[1])]


extreme_floats = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([1e308, -1e308, 5e-324, 0.0])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | extreme_floats | st.text(max_size=10),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=40,
)


def hostile(good_messages):
    mutations = st.one_of(
        st.binary(max_size=3000),
        st.builds(orjson.dumps, json_values),
        st.builds(lambda depth: b"[" * depth + b"]" * depth, st.integers(1, 5000)),  # deeply nested
        st.builds(lambda n: b'{"values": [' + b",".join([b"1.0"] * n) + b"]}", st.integers(0, 30000)),  # huge arrays
        st.builds(lambda raw, cut: raw[:cut], st.sampled_from(good_messages), st.integers(0, 400)),  # truncated
        st.builds(lambda raw, i, b: raw[:i] + bytes([b]) + raw[i + 1 :], st.sampled_from(good_messages), st.integers(0, 300), st.integers(0, 255)),
        st.sampled_from(good_messages),
    )
    return st.lists(st.one_of(mutations, st.none()), min_size=1, max_size=12)


def test_absurd_but_finite_spectra_are_flagged_or_dead_lettered(predictor, tecator):
    grid = WavelengthGrid.from_wavelengths(tecator.wavelengths)
    records = []
    for i, scale in enumerate([1.0, 1e3, 1e30, -1e300]):
        header = SpectrumHeader(analyzer_id="line-1", sequence=i, grid=grid)
        spectrum = tecator.X[0].copy()
        spectrum[40] *= scale
        records.append(InboundRecord("spectra", 0, i, b"line-1", encode_json(header, spectrum)))
    result = process_batch(records, predictor, BatchPolicy())
    assert len(result.predictions) + len(result.dead_letters) == 4
    flags = {orjson.loads(raw)["sequence"]: orjson.loads(raw)["outlier"]["flag"] for _, raw in result.predictions}
    assert flags[0] == "ok" or flags[0] == "warning"
    assert all(flag == "outlier" for sequence, flag in flags.items() if sequence > 0)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_every_message_is_accounted_for(predictor, good_messages, data):
    values = data.draw(hostile(good_messages))
    records = [InboundRecord("spectra", 0, offset, b"line-1", value) for offset, value in enumerate(values)]
    result = process_batch(records, predictor, BatchPolicy(max_message_bytes=100_000, saturation_limit=50.0))
    assert len(result.predictions) + len(result.dead_letters) == len(records)
    for _, raw in result.predictions:
        prediction = orjson.loads(raw)  # every published number is finite (orjson would write null otherwise)
        assert all(isinstance(v, float) for v in prediction["predictions"].values())
        assert all(isinstance(v, float) for k, v in prediction["outlier"].items() if k != "flag")
    offsets = sorted(orjson.loads(raw)["source_offset"] for _, raw in result.dead_letters)
    assert len(set(offsets)) == len(offsets)
