"""Nothing a producer sends stops the worker or poisons what it computes: real worker, real broker."""

import asyncio
import hashlib

import numpy as np
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from nirstream.core.messages.codec import encode_binary
from nirstream.core.messages.common import WavelengthGrid
from nirstream.core.messages.dead_letter import DeadLetter
from nirstream.core.messages.reference import ReferenceMessage
from nirstream.core.messages.spectrum import SpectrumHeader
from tests.streaming import collect, decoded, produce, run
from tests.test_stream_worker import spectra_messages

pytestmark = pytest.mark.reliability


async def committed_offsets(bootstrap: str, group_id: str, topic: str) -> int:
    """Sum of the group's committed offsets over the topic's partitions."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group_id, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer.topics()
        partitions = consumer.partitions_for_topic(topic) or set()
        return sum([(await consumer.committed(TopicPartition(topic, p))) or 0 for p in partitions])
    finally:
        await consumer.stop()


def wait_for_commits(bootstrap: str, group_id: str, topic: str, expected: int, timeout: float = 60.0) -> int:
    async def poll() -> int:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (total := await committed_offsets(bootstrap, group_id, topic)) < expected and loop.time() < deadline:
            await asyncio.sleep(0.2)  # polling the broker for the commit, not a synchronisation sleep
        return total
    return run(poll())


def test_dark_and_constant_spectra_are_dead_lettered_and_the_stream_goes_on(broker, topics, tecator, start_worker):
    worker = start_worker()
    grid = WavelengthGrid.from_wavelengths(tecator.wavelengths)
    header = SpectrumHeader(analyzer_id="line-1", sequence=10_000, grid=grid)
    zero = (b"line-1", encode_binary(header, np.zeros(grid.count)))
    constant = (b"line-1", encode_binary(header.model_copy(update={"sequence": 10_001}), np.full(grid.count, 2.5)))
    valid, _ = spectra_messages(tecator, 60)
    # a dark spectrum alone, then a batch mixing both with valid spectra
    run(produce(broker.bootstrap_servers, topics.spectra, [zero]))
    run(produce(broker.bootstrap_servers, topics.spectra, valid[:30] + [zero, constant] + valid[30:]))
    predictions = decoded(run(collect(broker.bootstrap_servers, topics.predictions, 60, settle=0.5)))
    assert sorted(p["message_id"] for p in predictions) == sorted(f"line-{i % 3 + 1}:{i}" for i in range(60))
    dead = decoded(run(collect(broker.bootstrap_servers, topics.deadletter, 3, settle=0.5)))
    assert [d["reason"] for d in dead] == ["degenerate"] * 3
    assert worker.process.poll() is None and worker.get("/ready")[0] == 200
    assert wait_for_commits(broker.bootstrap_servers, worker.group_id, topics.spectra, 63) == 63  # offsets moved past them
    assert worker.metric("nirstream_dead_letters_total", reason="degenerate") == 3


def test_an_oversize_message_gets_a_publishable_dead_letter(broker, topics, tecator, start_worker):
    worker = start_worker()  # default limit: 1 MB per spectrum message
    huge = b"NIRS" + bytes(5 * 1024 * 1024)
    valid, _ = spectra_messages(tecator, 20)
    run(produce(broker.bootstrap_servers, topics.spectra, valid[:10] + [(b"line-1", huge)] + valid[10:]))
    predictions = run(collect(broker.bootstrap_servers, topics.predictions, 20, settle=0.5))
    assert len(predictions) == 20
    (letter,) = [DeadLetter.model_validate_json(m.value) for m in run(collect(broker.bootstrap_servers, topics.deadletter, 1, settle=1.0))]
    assert letter.reason == "oversize" and letter.original_truncated
    assert letter.original_bytes == len(huge) and letter.original_sha256 == hashlib.sha256(huge).hexdigest()
    assert worker.metric("nirstream_publish_retries_total") == 0
    assert worker.metric("nirstream_unpublishable_total") == 0


def test_bad_lab_values_are_dead_lettered_and_kept_out_of_the_statistics(broker, topics, tecator, start_worker):
    worker = start_worker()
    valid, _ = spectra_messages(tecator, 12, analyzers=("line-1",))
    run(produce(broker.bootstrap_servers, topics.spectra, valid))
    assert len(run(collect(broker.bootstrap_servers, topics.predictions, 12))) == 12
    fat = tecator.target("fat")

    def reference(i: int, value) -> tuple[bytes, bytes]:
        body = ReferenceMessage(sample_id=f"S{i}", analyzer_id="line-1", values={"fat": 1.0}).model_dump(mode="json")
        return b"line-1", orjson.dumps(body).replace(b'"fat":1.0', b'"fat":' + value)

    bad = [reference(0, b"NaN"), reference(1, b"1e400"), reference(2, b"-1e9"), reference(3, b"Infinity")]
    good = [reference(i, repr(float(fat[i % tecator.n_samples])).encode()) for i in range(4, 12)]
    run(produce(broker.bootstrap_servers, topics.reference, bad + good))
    labelled = decoded(run(collect(broker.bootstrap_servers, topics.labelled, 8, settle=1.0)))
    assert sorted(p["sample_id"] for p in labelled) == sorted(f"S{i}" for i in range(4, 12))
    assert all(np.isfinite(p["reference"]["fat"]) for p in labelled)
    dead = decoded(run(collect(broker.bootstrap_servers, topics.deadletter, 4, settle=0.5)))
    assert sorted(d["reason"] for d in dead) == ["implausible_reference", "invalid_reference", "invalid_reference", "invalid_reference"]
    rmsep = worker.metric("nirstream_rolling_rmsep", analyzer="line-1")
    assert np.isfinite(rmsep) and rmsep > 0
    assert np.isfinite(worker.metric("nirstream_rolling_bias", analyzer="line-1"))
