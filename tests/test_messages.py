"""Every message kind the services write fast (orjson on dicts, spliced bytes) round-trips through its schema
module, the single definition of each topic's messages and of their encoders; one message size limit."""

import base64
import hashlib
from datetime import UTC, datetime

import numpy as np
import orjson
import pytest
from pydantic import ValidationError

from nirstream.core.datasets.spectrum_file import write_spectrum_csv
from nirstream.core.messages.codec import decode_spectrum, encode_binary, encode_json
from nirstream.core.errors import RejectReason, SpectrumRejected
from nirstream.core.messages.common import SCHEMA_VERSION, WavelengthGrid
from nirstream.core.messages.dead_letter import (DEAD_LETTER_ORIGINAL_LIMIT, DEAD_LETTER_PREFIX_BYTES, DeadLetter,
                                                 encode_dead_letter)
from nirstream.core.messages.labelled import LabelledPair, encode_labelled, labelled_pair
from nirstream.core.messages.limits import MAX_MESSAGE_BYTES
from nirstream.core.messages.model_event import ModelEvent, encode_model_event
from nirstream.core.messages.prediction import PredictionEncoder, PredictionMessage
from nirstream.core.messages.reference import ReferenceMessage, decode_reference
from nirstream.core.messages.spectrum import SpectrumHeader, SpectrumMessage
from nirstream.core.serving.predictor import Predictor
from nirstream.core.settings import SharedSettings
from nirstream.ingest.bridge import BridgeConfig, FileRejected, spectrum_message
from nirstream.stream.lab_join_store import OnlineMonitor, PendingPrediction
from nirstream.stream.batch_processing import BatchPolicy, InboundRecord, dead_letter, process_batch
from nirstream.stream.settings import Settings


@pytest.fixture(scope="module")
def grid(tecator):
    return WavelengthGrid.from_wavelengths(tecator.wavelengths)


def test_spectra_in_both_encodings_match_the_spectrum_schema(tecator, grid):
    header = SpectrumHeader(analyzer_id="line-1", sequence=7, grid=grid, sample_id="s-7")
    message = SpectrumMessage.model_validate_json(encode_json(header, tecator.X[0]))
    assert message.schema_version == SCHEMA_VERSION and message.values == pytest.approx(tecator.X[0].tolist())
    assert decode_spectrum(encode_binary(header, tecator.X[0])).header == header


def test_the_workers_predictions_match_the_prediction_schema(template_registry, tecator, grid):
    records = [InboundRecord("spectra", 0, i, b"line-1", encode_json(
        SpectrumHeader(analyzer_id="line-1", sequence=i, grid=grid, sample_id=f"s-{i}"), x)) for i, x in enumerate(tecator.X[:5])]
    result = process_batch(records, Predictor(template_registry.load("1")), BatchPolicy())
    messages = [PredictionMessage.model_validate_json(raw) for _, raw in result.predictions]
    assert [m.sequence for m in messages] == list(range(5)) and messages[0].schema_version == SCHEMA_VERSION
    assert messages[0].outlier.flag in {"ok", "warning", "outlier"} and messages[0].timings.batch_size == 5


@pytest.mark.parametrize("size", [100, DEAD_LETTER_ORIGINAL_LIMIT + 1])
def test_dead_letters_match_the_dead_letter_schema(size):
    record = InboundRecord("spectra", 2, 41, b"line-1", b"x" * size)
    letter = DeadLetter.model_validate_json(dead_letter(record, RejectReason.UNKNOWN_FORMAT, "neither JSON nor binary", "w1"))
    assert (letter.reason, letter.source_offset, letter.original_bytes) == ("unknown_format", 41, size)
    assert letter.original_truncated == (size > DEAD_LETTER_ORIGINAL_LIMIT)


def test_the_workers_labelled_pairs_match_the_labelled_schema(tecator, grid):
    monitor = OnlineMonitor()
    pending = PendingPrediction("line-1", "line-1:3", "2", {"fat": 12.5, "water": 60.0}, "ok", grid.model_dump(),
                                tecator.X[3].astype(np.float32), at=0.0)
    assert monitor.add_prediction("s-3", pending) is None  # waits for its lab value
    # the lab measured fat and protein: the pair holds what both have (fat), nothing else
    pair = monitor.add_reference(ReferenceMessage(sample_id="s-3", values={"fat": 12.0, "protein": 18.0}), now=1.0)
    key, raw = encode_labelled(pair)
    labelled = LabelledPair.model_validate_json(raw)
    assert key == b"line-1" and labelled.error == pytest.approx({"fat": 0.5}) and labelled.grid == grid
    assert labelled.reference == {"fat": 12.0} and labelled.predicted == {"fat": 12.5}
    assert monitor.stats["line-1"].rmsep("fat") == pytest.approx(0.5) and np.isnan(monitor.stats["line-1"].rmsep("water"))
    assert labelled.values == pytest.approx(tecator.X[3].astype(np.float32).tolist())


PREDICTED_AT = datetime(2026, 3, 1, 8, 30, tzinfo=UTC)


def prediction_encoder(**overrides) -> PredictionEncoder:
    options = dict(model_version="7", targets=["fat", "water"], units={"fat": "%", "water": "%"}, predicted_at=PREDICTED_AT,
                   t2_limits=(9.5, 14.2), q_limits=(0.01, 0.02), interval_coverage=0.9, batch_size=3,
                   preprocess_seconds=0.0012345, inference_seconds=0.0203)
    return PredictionEncoder(**options | overrides)


def test_the_fast_prediction_path_encodes_what_the_schema_decodes_back(grid):
    headers = [SpectrumHeader(analyzer_id="line-1", sequence=5, grid=grid, sample_id="s-5", batch_id="lot-2"),
               SpectrumHeader(analyzer_id="line-2", sequence=6, grid=grid)]
    raw = prediction_encoder().encode(
        headers, [[12.5, 60.25], [3.0, 70.0]], hotelling_t2=[1.5, 20.0], q_residual=[0.001, 0.03], flags=["ok", "outlier"],
        queue_seconds=[0.0041234, 0.0], lows=[[11.0, 59.0], [2.0, 69.0]], highs=[[14.0, 61.5], [4.0, 71.0]],
        spreads=[[0.2, 0.4], [0.1, 0.3]], transfers=["pds#2", ""])
    first, second = (PredictionMessage.model_validate_json(r) for r in raw)
    assert (first.analyzer_id, first.sequence, first.message_id, first.sample_id, first.batch_id) == \
        ("line-1", 5, "line-1:5", "s-5", "lot-2")
    assert first.spectrum_timestamp == headers[0].timestamp and first.predicted_at == PREDICTED_AT
    assert (first.schema_version, first.model_version, first.units) == (SCHEMA_VERSION, "7", {"fat": "%", "water": "%"})
    assert first.predictions == {"fat": 12.5, "water": 60.25} and first.ensemble_spread == {"fat": 0.2, "water": 0.4}
    assert first.intervals["water"].model_dump() == {"low": 59.0, "high": 61.5, "coverage": 0.9}
    assert first.transfer == "pds#2" and second.transfer is None  # '' means no transfer: the field is left out
    assert first.outlier.model_dump() == {"hotelling_t2": 1.5, "q_residual": 0.001, "t2_limit_95": 9.5, "t2_limit_99": 14.2,
                                          "q_limit_95": 0.01, "q_limit_99": 0.02, "flag": "ok"}
    assert first.timings.model_dump() == {"batch_size": 3, "queue_ms": 4.123, "preprocess_ms": 1.234, "inference_ms": 20.3,
                                          "end_to_end_ms": None}
    assert (second.sample_id, second.batch_id, second.outlier.flag, second.timings.queue_ms) == (None, None, "outlier", 0.0)
    # decoded and encoded again by the schema, a message is the same message
    assert PredictionMessage.model_validate_json(first.model_dump_json()) == first


def test_the_fast_prediction_path_leaves_out_what_the_model_has_not_and_returns_what_stopped_a_message(grid):
    headers = [SpectrumHeader(analyzer_id="line-1", sequence=i, grid=grid) for i in range(3)]
    raw = prediction_encoder(interval_coverage=None).encode(
        headers, [[1.0, 2.0], [1.0], [3.0, 4.0]], hotelling_t2=[1.0] * 3, q_residual=[0.0] * 3, flags=["ok"] * 3,
        queue_seconds=[0.0] * 3)
    assert isinstance(raw[1], ValueError)  # one value for two targets: that message alone fails
    body = orjson.loads(raw[2])
    assert not {"intervals", "ensemble_spread", "transfer", "sample_id", "batch_id"} & body.keys()
    assert PredictionMessage.model_validate_json(raw[2]).predictions == {"fat": 3.0, "water": 4.0}


@pytest.mark.parametrize("size", [0, 100, DEAD_LETTER_ORIGINAL_LIMIT + 1])
def test_a_dead_letter_decodes_back_to_its_original_and_its_reason(size):
    original = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    raw = encode_dead_letter(RejectReason.OVERSIZE, "d" * 3000, source_topic="spectra", source_partition=3, source_offset=9,
                             key=b"line-\xff" * 100, original=original, worker="host:1")
    letter = DeadLetter.model_validate_json(raw)
    assert (letter.schema_version, letter.reason, letter.source_topic, letter.source_partition, letter.source_offset,
            letter.worker) == (SCHEMA_VERSION, "oversize", "spectra", 3, 9, "host:1")
    assert letter.detail == "d" * 2000 and letter.key == (b"line-\xff" * 100)[:256].decode("utf-8", "replace")
    carried = base64.b64decode(letter.original_base64)
    truncated = size > DEAD_LETTER_ORIGINAL_LIMIT
    assert letter.original_truncated == truncated and letter.original_bytes == size
    assert carried == (original[:DEAD_LETTER_PREFIX_BYTES] if truncated else original)
    assert letter.original_sha256 == hashlib.sha256(original).hexdigest()
    assert DeadLetter.model_validate_json(letter.model_dump_json()) == letter


def test_the_workers_dead_letter_is_the_messages_dead_letter_of_its_record():
    record = InboundRecord("spectra", 2, 41, None, None)
    ours, theirs = (orjson.loads(raw) for raw in (
        dead_letter(record, RejectReason.UNKNOWN_FORMAT, "empty message", "w1"),
        encode_dead_letter(RejectReason.UNKNOWN_FORMAT, "empty message", source_topic="spectra", source_partition=2,
                           source_offset=41, key=None, original=None, worker="w1")))
    assert ours.pop("rejected_at") <= theirs.pop("rejected_at") and ours == theirs
    assert DeadLetter.model_validate(ours).key is None


def test_a_labelled_pair_encoded_fast_decodes_back(tecator, grid):
    values = tecator.X[4].astype(np.float32)
    measured = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    pair = labelled_pair(sample_id="s-4", analyzer_id="line-2", message_id="line-2:4", model_version="3",
                         predicted={"fat": 10.0, "water": 61.0}, reference={"fat": 9.25, "water": 62.0}, flag="warning",
                         measured_at=measured, grid=grid.model_dump(), values=values)
    key, raw = encode_labelled(pair)
    labelled = LabelledPair.model_validate_json(raw)
    assert key == b"line-2" and labelled.error == {"fat": 0.75, "water": -1.0} and pair["error"] == labelled.error
    assert (labelled.sample_id, labelled.message_id, labelled.model_version, labelled.flag, labelled.measured_at) == \
        ("s-4", "line-2:4", "3", "warning", measured)
    assert labelled.grid == grid and np.array_equal(np.float32(labelled.values), values)  # float32 values exactly
    assert LabelledPair.model_validate_json(labelled.model_dump_json()) == labelled


def test_a_model_event_encoded_for_the_models_topic_decodes_back():
    before = datetime.now(UTC)
    event = ModelEvent.model_validate_json(encode_model_event("transfer_published", "4", "/srv/registry", "pds for line-2"))
    assert (event.event, event.version, event.registry, event.reason) == ("transfer_published", "4", "/srv/registry",
                                                                          "pds for line-2")
    assert before <= event.at <= datetime.now(UTC)
    with pytest.raises(ValidationError):
        encode_model_event("deleted", "4", "", "")  # not an event workers know


def test_a_lab_value_decodes_or_says_why_not():
    raw = ReferenceMessage(sample_id="s-1", analyzer_id="line-1", values={"fat": 12.0}).model_dump_json().encode()
    assert decode_reference(raw).values == {"fat": 12.0}
    for bad in (None, b"", b'{"sample_id": "s-1", "values": {"fat": "NaN"}}'):
        with pytest.raises(ValueError):
            decode_reference(bad)


def test_one_message_size_limit_is_the_default_of_the_worker_the_decoder_and_the_bridge(monkeypatch, tmp_path, tecator):
    monkeypatch.delenv("NIRSTREAM_MAX_MESSAGE_BYTES", raising=False)
    assert SharedSettings.load().max_message_bytes == Settings.load().max_message_bytes == MAX_MESSAGE_BYTES
    assert BatchPolicy().max_message_bytes == BridgeConfig(tmp_path, "line-1", "csv", "t").max_message_bytes == MAX_MESSAGE_BYTES
    monkeypatch.setenv("NIRSTREAM_MAX_MESSAGE_BYTES", "20000")
    assert SharedSettings.load().max_message_bytes == Settings.load().max_message_bytes == 20000  # ingest reads this one
    over = b"{" + b" " * MAX_MESSAGE_BYTES
    with pytest.raises(SpectrumRejected) as rejected:
        decode_spectrum(over)
    assert rejected.value.reason is RejectReason.OVERSIZE and str(MAX_MESSAGE_BYTES) in rejected.value.detail


def test_the_bridge_rejects_a_file_whose_message_exceeds_the_configured_limit(tmp_path, tecator):
    data = write_spectrum_csv(tmp_path / "s.csv", tecator.wavelengths, tecator.X[0]).read_bytes()
    at = datetime(2026, 3, 1, tzinfo=UTC)
    raw = spectrum_message(BridgeConfig(tmp_path, "line-1", "csv", "t"), "s.csv", data, 0, at, "00")
    assert decode_spectrum(raw).header.analyzer_id == "line-1"
    small = BridgeConfig(tmp_path, "line-1", "csv", "t", max_message_bytes=len(raw) - 1)
    with pytest.raises(FileRejected) as rejected:
        spectrum_message(small, "s.csv", data, 0, at, "00")
    assert rejected.value.reason == "oversize" and f"{len(raw) - 1}-byte limit (max_message_bytes)" in rejected.value.detail
