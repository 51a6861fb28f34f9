"""Every message kind the services write fast (orjson on dicts) round-trips through its schema module,
the single definition of each topic's messages."""

import numpy as np
import pytest

from nirstream.core.messages.codec import decode_spectrum, encode_binary, encode_json
from nirstream.core.errors import RejectReason
from nirstream.core.messages.common import SCHEMA_VERSION, WavelengthGrid
from nirstream.core.messages.dead_letter import DEAD_LETTER_ORIGINAL_LIMIT, DeadLetter
from nirstream.core.messages.labelled import LabelledPair
from nirstream.core.messages.prediction import PredictionMessage
from nirstream.core.messages.reference import ReferenceMessage
from nirstream.core.messages.spectrum import SpectrumHeader, SpectrumMessage
from nirstream.core.serving.predictor import Predictor
from nirstream.core.messages.labelled import encode_labelled
from nirstream.stream.lab_join_store import OnlineMonitor, PendingPrediction
from nirstream.stream.batch_processing import BatchPolicy, InboundRecord, dead_letter, process_batch


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
