"""The worker's parts without Kafka: the model holder, the lab join, the metrics of a batch."""

import asyncio

import numpy as np
import pytest
from aiokafka.errors import RecordTooLargeError
from prometheus_client import generate_latest

from nirstream.core.messages.codec import encode_json
from nirstream.core.errors import RejectReason
from nirstream.core.messages.common import WavelengthGrid
from nirstream.core.messages.reference import ReferenceMessage
from nirstream.core.messages.spectrum import SpectrumHeader
from nirstream.core.serving.predictor import Predictor
from nirstream.kafka.publisher import Outgoing
from nirstream.stream.batch_publishing import BatchPublishing
from nirstream.stream.batch_processing import BatchPolicy, InboundRecord, process_batch
from nirstream.stream.lab_join import join_lab_values
from nirstream.stream.metrics import WorkerMetrics
from nirstream.stream.model_holder import ModelHolder
from nirstream.stream.lab_join_store import OnlineMonitor
from tests.helpers import tamper


def run(coroutine):
    return asyncio.run(coroutine)


def test_the_holder_serves_the_champion_swaps_and_rolls_back_without_reloading(registry):
    holder = ModelHolder(registry, WorkerMetrics())
    assert run(holder.sync_with_champion()) and holder.version == "1"
    assert not run(holder.sync_with_champion())  # nothing changed
    first = holder.current
    registry.promote("2", "test")
    assert run(holder.sync_with_champion()) and holder.version == "2" and holder.previous is first
    registry.rollback("test")
    assert run(holder.sync_with_champion()) and holder.current is first  # the previous model, already warm


def test_the_holder_refuses_a_tampered_bundle_once_and_keeps_serving(registry):
    metrics = WorkerMetrics()
    holder = ModelHolder(registry, metrics)
    run(holder.sync_with_champion())
    registry.promote("2", "test")
    tamper(registry.path("2") / "model.keras")  # after promotion, which verifies: corrupted on disk since
    assert not run(holder.sync_with_champion()) and holder.version == "1"
    assert "checksum" in holder.last_error and "2" in holder.refused_versions
    assert holder.last_refusal == {"reason": "verification", "version": "2"}  # what /ready shows: no paths
    assert not run(holder.sync_with_champion())  # not reloaded on every poll
    assert metrics.model_swap_failures.labels(reason="verification")._value.get() == 1


@pytest.fixture(scope="module")
def predictor(template_registry):
    return Predictor(template_registry.load("1"))


def _spectra(tecator, count):
    grid = WavelengthGrid.from_wavelengths(tecator.wavelengths)
    return [InboundRecord("spectra", 0, i, b"line-1", encode_json(
        SpectrumHeader(analyzer_id="line-1", sequence=i, grid=grid, sample_id=f"s-{i}"), tecator.X[i])) for i in range(count)]


def _reference(offset, body: bytes):
    return InboundRecord("reference", 0, offset, b"line-1", body)


def test_the_lab_join_pairs_valid_lab_values_and_dead_letters_the_rest_leaving_the_batch_alone(predictor, tecator):
    predicted = process_batch(_spectra(tecator, 4), predictor, BatchPolicy())
    dead_before = list(predicted.dead_letters)
    references = [
        _reference(0, ReferenceMessage(sample_id="s-0", values={"fat": 10.0}).model_dump_json().encode()),
        _reference(1, ReferenceMessage(sample_id="s-1", values={"fat": 1e6}).model_dump_json().encode()),
        _reference(2, b"{not json"),
    ]
    joined = join_lab_values(predicted, predictor, references, OnlineMonitor(), "w1", now=0.0)
    assert len(joined.labelled) == 1 and joined.references_accepted == 1
    assert joined.reasons == {RejectReason.IMPLAUSIBLE_REFERENCE.value: 1, RejectReason.INVALID_REFERENCE.value: 1}
    assert predicted.dead_letters == dead_before  # the prediction result is not edited


def test_a_batchs_metrics_count_what_it_published(predictor, tecator):
    records = _spectra(tecator, 3) + [InboundRecord("spectra", 0, 99, b"line-1", b"garbage")]
    predicted = process_batch(records, predictor, BatchPolicy())
    joined = join_lab_values(predicted, predictor, [], OnlineMonitor(), "w1")
    metrics = WorkerMetrics()
    metrics.observe_batch(len(records), predicted, joined, 0.01, predictor.targets)
    text = generate_latest(metrics.registry).decode()
    assert "nirstream_spectra_received_total 4.0" in text
    assert 'nirstream_predictions_total{analyzer="line-1"} 3.0' in text
    assert 'nirstream_dead_letters_total{reason="unknown_format"} 1.0' in text
    assert np.isfinite(metrics.last_prediction.labels(analyzer="line-1", target="fat")._value.get())


def test_a_refused_message_becomes_a_dead_letter_and_a_refused_dead_letter_is_counted_lost():
    metrics = WorkerMetrics()
    publishing = BatchPublishing(lambda: None, metrics, "deadletter", "w1", stopping=lambda: False,
                                 sleep=asyncio.sleep)
    too_large = RecordTooLargeError()
    replacement = publishing._unpublishable(Outgoing("predictions", b"line-1", b"x" * 100), too_large)
    assert replacement.topic == "deadletter" and replacement.replacement
    assert publishing._unpublishable(replacement, too_large) is None  # never replaced twice
    sample = metrics.registry.get_sample_value
    assert sample("nirstream_unpublishable_total", {"topic": "predictions"}) == 1
    assert sample("nirstream_unpublishable_total", {"topic": "deadletter"}) == 1
    assert sample("nirstream_dead_letters_total", {"reason": "unpublishable"}) == 1
    assert sample("nirstream_dead_letters_lost_total") == 1
