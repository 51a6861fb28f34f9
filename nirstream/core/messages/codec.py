"""Wire encodings of spectra and predictions.

Spectra come in one of two encodings, told apart by their first bytes:

* JSON: one object, the ``SpectrumMessage`` fields (see ``messages.spectrum``).
* Binary (for high rates): a 12-byte little-endian prefix, a JSON header, raw float32 values::

      offset  size  field
      0       4     magic b"NIRS"
      4       1     format version (1)
      5       1     value type (1 = float32 little-endian)
      6       2     header length H in bytes (uint16)
      8       4     value count N (uint32)
      12      H     UTF-8 JSON of the SpectrumHeader fields (no "values")
      12+H    4*N   values

Decoding never raises anything but ``SpectrumRejected``, whose reason labels the dead letter.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from pydantic import ValidationError

from nirstream.core.errors import RejectReason, SpectrumRejected
from nirstream.core.messages.common import SCHEMA_VERSION
from nirstream.core.messages.limits import MAX_MESSAGE_BYTES
from nirstream.core.messages.spectrum import SpectrumHeader
from nirstream.core.messages.spectrum_checks import check_spectrum_length, check_spectrum_values

BINARY_MAGIC = b"NIRS"
BINARY_FORMAT_VERSION = 1
FLOAT32_LE = 1
_PREFIX = struct.Struct("<4sBBHI")


@dataclass(frozen=True, slots=True)
class Spectrum:
    """A decoded, validated spectrum: header plus a 1-D float array of ``header.grid.count`` values."""

    header: SpectrumHeader
    values: np.ndarray


def _header_json(header: SpectrumHeader) -> bytes:
    return header.model_dump_json(exclude_none=True).encode()


def encode_json(header: SpectrumHeader, values: np.ndarray) -> bytes:
    body = header.model_dump(mode="json", exclude_none=True)
    body["values"] = np.ascontiguousarray(values, dtype=np.float64)
    return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)


def encode_binary(header: SpectrumHeader, values: np.ndarray) -> bytes:
    header_bytes = _header_json(header)
    data = np.ascontiguousarray(values, dtype="<f4")
    if len(header_bytes) > 0xFFFF:
        raise ValueError("header too long for the binary format")
    prefix = _PREFIX.pack(BINARY_MAGIC, BINARY_FORMAT_VERSION, FLOAT32_LE, len(header_bytes), data.size)
    return prefix + header_bytes + data.tobytes()


def _validate_header(fields: Any) -> SpectrumHeader:
    if not isinstance(fields, dict):
        raise SpectrumRejected(RejectReason.SCHEMA_INVALID, f"expected a JSON object, got {type(fields).__name__}")
    version = fields.get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise SpectrumRejected(
            RejectReason.UNSUPPORTED_SCHEMA_VERSION, f"schema_version {version!r}; this worker reads {SCHEMA_VERSION}"
        )
    try:
        return SpectrumHeader.model_validate(fields)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'message'}: {e['msg']}" for e in exc.errors()[:5])
        raise SpectrumRejected(RejectReason.SCHEMA_INVALID, problems) from None


def _header_from_json(raw: bytes) -> SpectrumHeader:
    """The binary form's JSON header. pydantic parses valid headers straight from the bytes (the hot path, one pass
    in Rust); anything it refuses is parsed again to give the precise reason (bad JSON, schema version, fields)."""
    try:
        return SpectrumHeader.model_validate_json(raw)
    except ValidationError:
        pass
    try:
        fields = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise SpectrumRejected(RejectReason.MALFORMED_BINARY, f"header is not JSON: {exc}") from None
    return _validate_header(fields)


def _values_from_json(raw_values: Any) -> np.ndarray:
    if not isinstance(raw_values, list):
        raise SpectrumRejected(RejectReason.SCHEMA_INVALID, "'values' must be a list of numbers")
    try:
        values = np.array(raw_values)
    except (ValueError, TypeError):  # ragged nesting
        raise SpectrumRejected(RejectReason.SCHEMA_INVALID, "'values' must be a flat list of numbers") from None
    if values.ndim != 1 or values.dtype.kind not in "if":
        raise SpectrumRejected(RejectReason.SCHEMA_INVALID, "'values' must be a flat list of numbers")
    return values.astype(np.float64, copy=False)


def _split_json(raw: bytes) -> tuple[SpectrumHeader, np.ndarray]:
    """Header and float64 values of the JSON form (length checked; finiteness is the caller's)."""
    try:
        fields = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise SpectrumRejected(RejectReason.MALFORMED_JSON, str(exc)) from None
    if not isinstance(fields, dict) or "values" not in fields:
        raise SpectrumRejected(RejectReason.SCHEMA_INVALID, "expected a JSON object with 'values'")
    values = _values_from_json(fields.pop("values"))
    header = _validate_header(fields)
    check_spectrum_length(values, header.grid.count)
    return header, values


def _split_binary(raw: bytes) -> tuple[SpectrumHeader, np.ndarray]:
    """Header and the values as a float32 view of ``raw`` (length checked; finiteness is the caller's)."""
    if len(raw) < _PREFIX.size:
        raise SpectrumRejected(RejectReason.MALFORMED_BINARY, f"{len(raw)} bytes is shorter than the 12-byte prefix")
    magic, version, value_type, header_len, count = _PREFIX.unpack_from(raw)
    if magic != BINARY_MAGIC:
        raise SpectrumRejected(RejectReason.MALFORMED_BINARY, "missing NIRS magic")
    if version != BINARY_FORMAT_VERSION:
        raise SpectrumRejected(RejectReason.UNSUPPORTED_SCHEMA_VERSION, f"binary format version {version}")
    if value_type != FLOAT32_LE:
        raise SpectrumRejected(RejectReason.MALFORMED_BINARY, f"unknown value type {value_type}")
    expected_size = _PREFIX.size + header_len + 4 * count
    if len(raw) != expected_size:
        raise SpectrumRejected(
            RejectReason.MALFORMED_BINARY, f"message is {len(raw)} bytes, prefix announces {expected_size}"
        )
    header = _header_from_json(raw[_PREFIX.size : _PREFIX.size + header_len])
    values = np.frombuffer(raw, dtype="<f4", count=count, offset=_PREFIX.size + header_len)
    check_spectrum_length(values, header.grid.count)
    return header, values


def decode_unchecked_values(raw: bytes | None, max_bytes: int = MAX_MESSAGE_BYTES) -> Spectrum:
    """As ``decode_spectrum``, but the values' finiteness is left to the caller, who checks a whole batch at once
    (``validation.non_finite_rows``); binary values stay a float32 view of ``raw`` until the batch is stacked."""
    _check_envelope(raw, max_bytes)
    return Spectrum(*(_split_binary(raw) if raw[:4] == BINARY_MAGIC else _split_json(raw)))


def _check_envelope(raw: bytes | None, max_bytes: int) -> None:
    if raw is None or len(raw) == 0:
        raise SpectrumRejected(RejectReason.UNKNOWN_FORMAT, "empty message")
    if len(raw) > max_bytes:
        raise SpectrumRejected(RejectReason.OVERSIZE, f"{len(raw)} bytes exceeds the {max_bytes}-byte limit")
    if raw[:4] != BINARY_MAGIC and raw.lstrip()[:1] != b"{":
        raise SpectrumRejected(RejectReason.UNKNOWN_FORMAT, "neither JSON (starts with '{') nor binary (starts with NIRS)")


def decode_spectrum(raw: bytes | None, max_bytes: int = MAX_MESSAGE_BYTES) -> Spectrum:
    """Decode either encoding into float64 values; raise ``SpectrumRejected`` with the reason for anything unusable."""
    spectrum = decode_unchecked_values(raw, max_bytes)
    values = spectrum.values.astype(np.float64, copy=False)
    check_spectrum_values(values, spectrum.header.grid.count)
    return Spectrum(spectrum.header, values)
