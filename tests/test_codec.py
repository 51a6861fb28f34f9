"""Spectrum and prediction encodings: round trips, every rejection reason, fuzzing."""

from datetime import UTC, datetime

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nirstream.core.messages.codec import (
    BINARY_MAGIC,
    decode_spectrum,
    encode_binary,
    encode_json,
)
from nirstream.core.errors import RejectReason, SpectrumRejected
from nirstream.core.messages.common import WavelengthGrid
from nirstream.core.messages.spectrum import SpectrumHeader

GRID = WavelengthGrid(start_nm=850.0, step_nm=200 / 99, count=100)


@pytest.fixture
def header():
    return SpectrumHeader(
        analyzer_id="line-1",
        sequence=42,
        timestamp=datetime(2026, 11, 25, 12, 0, tzinfo=UTC),
        grid=GRID,
        sample_id="S-001",
    )


def rejected(raw: bytes, **kwargs) -> RejectReason:
    with pytest.raises(SpectrumRejected) as info:
        decode_spectrum(raw, **kwargs)
    return info.value.reason


def test_json_round_trip_on_a_real_spectrum(header, tecator_spectra):
    raw = encode_json(header, tecator_spectra[0])
    spectrum = decode_spectrum(raw)
    assert spectrum.header == header
    assert spectrum.header.message_id == "line-1:42"
    np.testing.assert_array_equal(spectrum.values, tecator_spectra[0])
    assert orjson.loads(raw)["grid"]["count"] == 100  # readable by any JSON tool


def test_binary_round_trip_keeps_float32_precision(header, tecator_spectra):
    raw = encode_binary(header, tecator_spectra[0])
    assert raw[:4] == BINARY_MAGIC
    assert len(raw) < len(encode_json(header, tecator_spectra[0]))
    spectrum = decode_spectrum(raw)
    assert spectrum.header == header
    np.testing.assert_allclose(spectrum.values, tecator_spectra[0], rtol=1e-7)


def test_grid_describes_the_real_tecator_axis(tecator):
    grid = WavelengthGrid.from_wavelengths(tecator.wavelengths)
    np.testing.assert_allclose(grid.wavelengths(), tecator.wavelengths, atol=1e-3)
    with pytest.raises(ValueError, match="not evenly spaced"):
        WavelengthGrid.from_wavelengths(np.array([1.0, 2.0, 4.0]))


def test_wrong_grid_is_reported(header):
    header.grid.require_match(GRID)
    shifted = WavelengthGrid(start_nm=852.0, step_nm=GRID.step_nm, count=100)
    with pytest.raises(SpectrumRejected, match="wrong_grid: grid 852-1052 nm") as info:
        shifted.require_match(GRID)
    assert info.value.reason is RejectReason.WRONG_GRID
    with pytest.raises(SpectrumRejected, match="99 channels, model expects 100"):
        WavelengthGrid(start_nm=850, step_nm=2, count=99).require_match(GRID)


def _json(header, values) -> dict:
    body = header.model_dump(mode="json")
    body["values"] = values
    return body


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda b: b"{not json", RejectReason.MALFORMED_JSON),
        (lambda b: b'{"values": [1.0, NaN]}', RejectReason.MALFORMED_JSON),
        (lambda b: b"[1, 2, 3]", RejectReason.UNKNOWN_FORMAT),
        (lambda b: b"", RejectReason.UNKNOWN_FORMAT),
        (lambda b: b"NIRS\x01", RejectReason.MALFORMED_BINARY),
        (lambda b: b"NIRS" + b"\x00" * 20, RejectReason.UNSUPPORTED_SCHEMA_VERSION),
        (lambda b: b + b" " * 2_000_000, RejectReason.OVERSIZE),
    ],
)
def test_malformed_messages_are_rejected_with_reason(header, tecator_spectra, mutate, reason):
    assert rejected(mutate(encode_json(header, tecator_spectra[0]))) is reason


def test_content_problems_are_rejected_with_reason(header, tecator_spectra):
    good = tecator_spectra[0].tolist()
    dump = lambda body: orjson.dumps(body)  # noqa: E731
    assert rejected(dump(_json(header, good[:99]))) is RejectReason.WRONG_LENGTH
    assert rejected(dump(_json(header, good + [1.0]))) is RejectReason.WRONG_LENGTH
    assert rejected(dump(_json(header, ["a"] * 100))) is RejectReason.SCHEMA_INVALID
    assert rejected(dump(_json(header, [[1.0]] * 100))) is RejectReason.SCHEMA_INVALID
    assert rejected(dump(_json(header, "1,2,3"))) is RejectReason.SCHEMA_INVALID
    assert rejected(dump({**_json(header, good), "schema_version": 2})) is RejectReason.UNSUPPORTED_SCHEMA_VERSION
    assert rejected(dump({**_json(header, good), "analyzer_id": "bad id!"})) is RejectReason.SCHEMA_INVALID
    assert rejected(dump({**_json(header, good), "colour": "red"})) is RejectReason.SCHEMA_INVALID
    with_inf = np.array(tecator_spectra[0])
    with_inf[3] = np.inf
    assert rejected(encode_binary(header, with_inf)) is RejectReason.NON_FINITE
    with_nan = np.array(tecator_spectra[0])
    with_nan[10:20] = np.nan
    with pytest.raises(SpectrumRejected, match="10 of 100 values are NaN"):
        decode_spectrum(encode_binary(header, with_nan))
    short = encode_binary(header, tecator_spectra[0])[:-4]
    assert rejected(short) is RejectReason.MALFORMED_BINARY


def test_huge_json_number_is_never_accepted_as_a_value(header, tecator_spectra):
    values = ",".join(["1e999"] + ["0.5"] * 99)
    body = encode_json(header, tecator_spectra[0]).rsplit(b'"values"', 1)[0] + b'"values":[' + values.encode() + b"]}"
    assert rejected(body) in {RejectReason.NON_FINITE, RejectReason.MALFORMED_JSON}
