"""The lab join's state in Kafka: changelog records, their fold, the restore reader, and a worker killed mid-join
whose successor restores the state and publishes each pair once."""

import asyncio
from datetime import UTC, datetime

import numpy as np
import orjson
import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord

from nirstream.core.messages.codec import encode_binary, encode_json
from nirstream.core.messages.common import WavelengthGrid
from nirstream.core.messages.reference import ReferenceMessage
from nirstream.core.messages.spectrum import SpectrumHeader
from nirstream.core.serving.predictor import Predictor
from nirstream.stream.batch_processing import BatchPolicy, InboundRecord, process_batch
from nirstream.stream.consumer import BatchConsumer
from nirstream.kafka.topic_reader import read_latest, read_to_end
from nirstream.stream.join_changelog import decode_change, encode_change, fold
from nirstream.stream.join_state import require_partitions
from nirstream.stream.lab_join import join_lab_values
from nirstream.stream.metrics import WorkerMetrics
from nirstream.stream.lab_join_store import JoinedSample, OnlineMonitor, PendingPrediction, StateChange
from nirstream.stream.settings import Settings
from nirstream.stream.topics import ensure_topics
from tests.helpers import as_float32, create_topic
from tests.streaming import collect, decoded, run, unique_topics
from tests.test_worker_hostile import wait_for_commits

RETENTION = 100.0


def pending(sample: int, at: float, rng=None, analyzer="line-1") -> PendingPrediction:
    values = (rng or np.random.default_rng(sample)).normal(size=7).astype(np.float32)  # synthetic: unit tests only
    return PendingPrediction(analyzer, f"{analyzer}:{sample}", "3", {"fat": 10.0 + sample}, "ok",
                             {"start_nm": 850.0, "step_nm": 2.0, "count": 7}, values, at)


def lab(sample: int, value: float = 9.0, analyzer="line-1") -> ReferenceMessage:
    return ReferenceMessage(sample_id=f"S{sample}", analyzer_id=analyzer, values={"fat": value},
                            measured_at=datetime(2026, 11, 25, 15, 10, tzinfo=UTC))


def changelog(*batches: list[StateChange]) -> dict[int, dict[bytes, bytes | None]]:
    """What ``read_latest`` returns after these changes were written, in order: the last record per key."""
    latest: dict[int, dict[bytes, bytes | None]] = {}
    for change in (c for batch in batches for c in batch):
        partition, key, value = encode_change(change)
        latest.setdefault(partition, {})[key] = value
    return latest


def restored(latest: dict[int, dict[bytes, bytes | None]], now: float) -> OnlineMonitor:
    monitor = OnlineMonitor(RETENTION)
    monitor.restore([e for p, records in latest.items() for e in fold(p, records, now, RETENTION)], now)
    return monitor


def test_every_entry_kind_round_trips_through_its_changelog_record(rng):
    prediction = pending(1, at=5.5, rng=rng)
    for entry in (prediction, lab(1), JoinedSample("line-1:1"), None):
        change = StateChange(3, "S1", entry, 5.5)
        partition, key, value = encode_change(change)
        assert (partition, key) == (3, b"S1") and (value is None) == (entry is None)
        back = decode_change(partition, key, value)
        assert back.partition == 3 and back.sample_id == "S1"
        if isinstance(entry, PendingPrediction):
            np.testing.assert_array_equal(back.entry.values, prediction.values)  # the spectrum, bit for bit
            assert back.entry.values.dtype == np.float32
            assert (back.entry.predicted, back.entry.message_id, back.entry.grid, back.at) == \
                   (prediction.predicted, prediction.message_id, prediction.grid, 5.5)
        else:
            assert back.entry == entry
    assert len(encode_change(StateChange(0, "S1", prediction, 0.0))[2]) < 400  # compact: 7 float32 in base64


def test_the_fold_keeps_the_last_record_per_sample_and_leaves_out_tombstones_expired_and_unreadable(caplog):
    now = 1000.0
    latest = changelog(
        [StateChange(0, "S1", pending(1, now - 50), now - 50), StateChange(0, "S2", pending(2, now - 40), now - 40),
         StateChange(0, "S3", lab(3), now - 30), StateChange(0, "S4", pending(4, now - RETENTION - 1), now - RETENTION - 1)],
        [StateChange(0, "S1", JoinedSample("line-1:1"), now - 10), StateChange(0, "S2", None, now - 5)],
    )
    latest[0][b"S5"] = b"{not json"
    latest[0][b"S6"] = orjson.dumps({"v": 99, "kind": "prediction", "at": now})
    latest[0][b"S7"] = b"[1, 2]"  # JSON, not an object
    good = orjson.loads(latest[0][b"S3"])
    latest[0][b"S8"] = orjson.dumps({**good, "reference": [1, 2]})  # an object whose parts have the wrong types
    entries = {e.sample_id: e for e in fold(0, latest[0], now, RETENTION)}
    assert sorted(entries) == ["S1", "S3"]  # S2 deleted, S4 expired, S5-S8 unreadable
    assert isinstance(entries["S1"].entry, JoinedSample) and entries["S3"].entry == lab(3)
    assert "skipped 4 unreadable" in caplog.text


def test_changes_carry_their_partition_and_forgotten_entries_become_tombstones():
    monitor = OnlineMonitor(retention_seconds=10, capacity=2)
    monitor.add_prediction("S1", pending(1, 0.0), partition=1)
    monitor.add_reference(lab(2), now=1.0, partition=2)
    assert [(c.partition, c.sample_id, type(c.entry)) for c in monitor.take_changes()] == \
           [(1, "S1", PendingPrediction), (2, "S2", ReferenceMessage)]
    monitor.add_prediction("S3", pending(3, 2.0), partition=3)
    monitor.add_prediction("S4", pending(4, 2.0), partition=0)  # over capacity: S1 forgotten
    monitor.add_reference(lab(5), now=11.5, partition=2)  # S2 is 10.5 s old: expired
    changes = {(c.partition, c.sample_id): c.entry for c in monitor.take_changes()}
    assert changes[1, "S1"] is None and changes[2, "S2"] is None
    assert isinstance(changes[3, "S3"], PendingPrediction) and changes[2, "S5"] == lab(5)
    assert monitor.take_changes() == []


def test_a_restored_monitor_completes_pairs_and_a_replayed_batch_adds_none():
    # batch 1 on the first worker: a prediction waits for its lab value, a lab value waits for its prediction
    first = OnlineMonitor(RETENTION)
    assert first.add_prediction("S1", pending(1, 10.0), partition=2) is None
    assert first.add_reference(lab(2), now=10.0, partition=2) is None
    batch1 = first.take_changes()
    # the first worker dies; the next one restores partition 2 and reads batch 2
    second = restored(changelog(batch1), now=20.0)
    assert (len(second.predictions), len(second.references)) == (1, 1)
    pair1 = second.add_reference(lab(1, value=9.5), now=20.0, partition=2)
    pair2 = second.add_prediction("S2", pending(2, 20.0), partition=2)
    assert pair1["message_id"] == "line-1:1" and pair1["error"] == pytest.approx({"fat": 11.0 - 9.5})
    assert pair2["message_id"] == "line-1:2" and pair2["error"] == pytest.approx({"fat": 12.0 - 9.0})
    batch2 = second.take_changes()
    assert {c.sample_id for c in batch2} == {"S1", "S2"} and all(isinstance(c.entry, JoinedSample) for c in batch2)
    # crash after batch 2's records were acknowledged, before its offsets were committed: batch 2 is replayed
    third = restored(changelog(batch1, batch2), now=30.0)
    assert third.add_reference(lab(1, value=9.5), now=30.0, partition=2) is None
    assert third.add_prediction("S2", pending(2, 20.0), partition=2) is None
    assert (len(third.predictions), len(third.references)) == (0, 0)
    # a replay within the same worker (partitions revoked and assigned back) adds nothing either
    assert second.add_reference(lab(1, value=9.5), now=31.0, partition=2) is None
    # crash after the pairs were published but before their joined records were: the pairs come again, same ids
    fourth = restored(changelog(batch1), now=30.0)
    assert fourth.add_reference(lab(1, value=9.5), now=30.0, partition=2)["message_id"] == "line-1:1"


def test_revoked_partitions_are_forgotten_and_restored_entries_keep_time_order():
    monitor = OnlineMonitor(retention_seconds=10)
    monitor.add_prediction("S1", pending(1, 5.0), partition=0)
    monitor.add_prediction("S2", pending(2, 6.0), partition=1)
    assert monitor.drop_partitions({1}) == 1 and list(monitor.predictions) == ["S1"]
    monitor.restore([StateChange(1, "S0", pending(0, 1.0), 1.0), StateChange(1, "S3", pending(3, 7.0), 7.0)], now=8.0)
    assert list(monitor.predictions) == ["S0", "S1", "S3"]  # oldest first: expiry reads the front
    monitor.add_prediction("S4", pending(4, 15.5), partition=0)
    assert list(monitor.predictions) == ["S3", "S4"]  # S0 (14.5 s old) and S1 (10.5 s) expired
    assert sorted(c for c in monitor.take_changes() if c.entry is None) == \
           [StateChange(0, "S1", None, 15.5), StateChange(1, "S0", None, 15.5)]


@pytest.fixture(scope="module")
def predictor(template_registry):
    return Predictor(template_registry.load("1"))


def test_the_lab_join_writes_each_state_in_its_records_partition_and_joined_records_apart(predictor, tecator):
    grid = WavelengthGrid.from_wavelengths(tecator.wavelengths)
    # the last two without a key (a producer that leaves partitioning to the client): each keeps its own partition
    spectra = [InboundRecord("spectra", partition, i, key, encode_json(
        SpectrumHeader(analyzer_id=analyzer, sequence=i, grid=grid, sample_id=f"S{i}"), tecator.X[i]))
        for i, (analyzer, key, partition) in enumerate([("line-1", b"line-1", 1), ("line-3", b"line-3", 3),
                                                        ("line-1", None, 0), ("line-2", None, 2)])]
    monitor = OnlineMonitor()
    predicted = process_batch(spectra, predictor, BatchPolicy())
    first = join_lab_values(predicted, predictor, [], monitor, "w1", now=0.0)
    assert sorted((p, k) for p, k, _ in first.state_records) == [(0, b"S2"), (1, b"S0"), (2, b"S3"), (3, b"S1")]
    assert first.joined_records == [] and first.labelled == []
    fat = float(tecator.target("fat")[1])
    references = [InboundRecord("reference", 3, 0, b"line-3", lab(1, fat, "line-3").model_dump_json().encode())]
    second = join_lab_values(process_batch([], predictor, BatchPolicy()), predictor, references, monitor, "w1", now=1.0)
    assert len(second.labelled) == 1 and second.state_records == []
    [(partition, key, value)] = second.joined_records
    assert (partition, key, orjson.loads(value)["message_id"]) == (3, b"S1", "line-3:1")


def test_the_changelog_matches_the_spectra_topic_and_is_read_to_its_end_whatever_the_batching(broker, topics):
    settings = Settings(bootstrap_servers=broker.bootstrap_servers, topics=topics, spectra_partitions=5)

    async def create_and_write() -> int:
        await create_topic(broker.bootstrap_servers, topics.spectra, 3)  # created before, with another count
        await ensure_topics(settings)  # the changelog with its configs: the embedded broker takes them, and ignores them
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, acks="all", linger_ms=5)
        await producer.start()
        try:
            partitions = len(await producer.partitions_for(topics.lab_join))
            await (await producer.send(topics.lab_join, b"single", key=b"S0", partition=0))
            for round_ in (1, 2):  # then several records per produce batch, the last one with a tombstone
                sends = [await producer.send(topics.lab_join, b"%d" % (round_ * 10 + i), key=b"S%d" % i, partition=i % 2)
                         for i in range(5)]
                if round_ == 2:
                    sends.append(await producer.send(topics.lab_join, None, key=b"S3", partition=1))
                await asyncio.gather(*sends)
        finally:
            await producer.stop()
        return partitions

    assert run(create_and_write()) == 3  # as many as the spectra topic has
    latest = run(read_latest(settings.kafka_client_options(), topics.lab_join, [0, 1, 2]))
    assert latest == {0: {b"S0": b"20", b"S2": b"22", b"S4": b"24"}, 1: {b"S1": b"21", b"S3": None}, 2: {}}


def test_a_changelog_with_fewer_partitions_than_the_spectra_is_refused_by_name(broker, topics):
    settings = Settings(bootstrap_servers=broker.bootstrap_servers, topics=topics, spectra_partitions=2)

    async def start() -> None:
        await create_topic(broker.bootstrap_servers, topics.lab_join, 1)  # made by hand, too small
        await ensure_topics(settings)
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers)
        await producer.start()
        try:
            await require_partitions(producer, settings)  # what the worker does before it consumes
        finally:
            await producer.stop()

    with pytest.raises(ValueError, match=rf"topic {topics.lab_join} has 1 partition\(s\), .* 2: "):
        run(start())


async def everything(bootstrap: str, topic: str, partitions: int = 4) -> list:
    return [m async for m in read_to_end({"bootstrap_servers": bootstrap}, topic, range(partitions))]


def spectrum(tecator, index: int, line: int) -> tuple[int, bytes, bytes]:
    """Partition, key and value of a spectrum with a sample id: analyzer line-q on partition q, as a partitioner would."""
    header = SpectrumHeader(analyzer_id=f"line-{line}", sequence=index, sample_id=f"T-{index}",
                            grid=WavelengthGrid.from_wavelengths(tecator.wavelengths))
    return line, header.analyzer_id.encode(), encode_binary(header, tecator.X[index])


def lab_value(tecator, index: int, line: int) -> tuple[int, bytes, bytes]:
    reference = ReferenceMessage(sample_id=f"T-{index}", analyzer_id=f"line-{line}", values={"fat": float(tecator.target("fat")[index])})
    return line, f"line-{line}".encode(), reference.model_dump_json().encode()


async def produce_to(bootstrap: str, topic: str, messages: list[tuple[int, bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await asyncio.gather(*[await producer.send(topic, value, key=key, partition=p) for p, key, value in messages])
    finally:
        await producer.stop()


@pytest.mark.reliability
def test_a_worker_killed_mid_join_is_replaced_and_its_successor_publishes_each_pair_once(broker, topics, tecator, start_worker):
    bootstrap = broker.bootstrap_servers
    lines = range(4)  # one analyzer per partition; sample q waits with its prediction, sample 10 + q with its lab value
    first = start_worker()
    run(produce_to(bootstrap, topics.spectra, [spectrum(tecator, q, q) for q in lines]))
    run(produce_to(bootstrap, topics.reference, [lab_value(tecator, 10 + q, q) for q in lines]))
    predictions = {p["sample_id"]: p for p in decoded(run(collect(bootstrap, topics.predictions, 4)))}
    assert wait_for_commits(bootstrap, first.group_id, topics.spectra, 4) == 4
    assert wait_for_commits(bootstrap, first.group_id, topics.reference, 4) == 4

    second = start_worker()  # same group: the partitions are split, each restores its half
    first.wait_for_log("partitions revoked: forgot 8 lab-join entries")  # /ready may come before the split
    first.kill()  # SIGKILL: its memory is gone, its join state is in the changelog
    run(produce_to(bootstrap, topics.reference, [lab_value(tecator, q, q) for q in lines]))
    run(produce_to(bootstrap, topics.spectra, [spectrum(tecator, 10 + q, q) for q in lines]))
    # the second worker takes the dead one's partitions over once its session ends
    assert len(run(collect(bootstrap, topics.labelled, 8, timeout=120))) >= 8
    assert wait_for_commits(bootstrap, second.group_id, topics.reference, 8, timeout=120) == 8
    assert wait_for_commits(bootstrap, second.group_id, topics.spectra, 8, timeout=120) == 8
    pairs = decoded(run(everything(bootstrap, topics.labelled)))  # all it published: pairs go out before commits
    assert sorted(p["sample_id"] for p in pairs) == sorted(f"T-{i}" for q in lines for i in (q, 10 + q))  # each once
    for pair in pairs:
        index = int(pair["sample_id"][2:])
        assert pair["message_id"] == f"{pair['analyzer_id']}:{index}"
        assert pair["reference"]["fat"] == pytest.approx(tecator.target("fat")[index])
        np.testing.assert_allclose(pair["values"], as_float32(tecator.X[index]), rtol=1e-6)  # the spectrum kept
        if index < 10:  # predicted by the first worker, joined by the second
            assert pair["predicted"]["fat"] == predictions[pair["sample_id"]]["predictions"]["fat"]
    for q in lines:
        errors = [p["error"]["fat"] for p in pairs if p["analyzer_id"] == f"line-{q}"]
        assert second.metric("nirstream_reference_pairs_total", analyzer=f"line-{q}") == 2
        assert second.metric("nirstream_rolling_rmsep", analyzer=f"line-{q}", target="fat") == \
               pytest.approx(np.sqrt(np.mean(np.square(errors))), rel=1e-6)
    second.wait_for_log("restored 8 lab-join entries of partitions [0, 1, 2, 3]")
    assert second.metric("nirstream_join_restored_total") >= 4 + 8  # its half, then everything


def test_the_retraining_export_keeps_the_first_of_a_repeated_pair():
    from nirstream.core.messages.labelled import LabelledPair
    from nirstream.trainer.plant_pairs import labelled_frame

    grid = WavelengthGrid(start_nm=850.0, step_nm=2.0, count=3)
    pair = LabelledPair(sample_id="S1", analyzer_id="line-1", message_id="line-1:1", model_version="1", predicted={"fat": 1.0},
                        reference={"fat": 1.5}, error={"fat": -0.5}, flag="ok", measured_at=datetime(2026, 11, 25, tzinfo=UTC),
                        grid=grid, values=[1.0, 2.0, 3.0])
    other = pair.model_copy(update={"sample_id": "S2", "message_id": "line-1:2"})
    assert list(labelled_frame([pair, other, pair], ["fat"], grid)["sample_id"]) == ["S1", "S2"]


class ScriptedConsumer:
    """A test double for the batch loop's AIOKafkaConsumer: each getmany returns the next scripted fetch, and may
    first run a rebalance through the worker's real listener, as aiokafka does while a getmany waits."""

    def __init__(self, keeper, fetches: list[tuple[bool, list[tuple[str, int, int]]]]):
        self.keeper, self.fetches = keeper, list(fetches)

    async def getmany(self, timeout_ms: int = 0, max_records: int | None = None):
        rebalance, records = self.fetches.pop(0) if self.fetches else (False, [])
        if rebalance:  # partition 0 is taken away and the group settles with nothing new for this worker
            await self.keeper.on_partitions_revoked({TopicPartition("spectra", 0)})
            await self.keeper.on_partitions_assigned(set())
        fetched: dict[TopicPartition, list[ConsumerRecord]] = {}
        for topic, partition, offset in records:
            fetched.setdefault(TopicPartition(topic, partition), []).append(ConsumerRecord(
                topic, partition, offset, 0, 0, b"line-1", b"{}", None, 2, 2, []))
        return fetched


@pytest.mark.parametrize("rebalance", [False, True], ids=["no rebalance", "rebalance between fetches"])
def test_records_fetched_before_a_rebalance_are_left_out_of_the_batch(rebalance):
    """They are read again from the committed offsets by whoever owns their partitions now; in this batch they
    would be joined against state that was just forgotten (or restored anew)."""
    settings = Settings(bootstrap_servers="127.0.0.1:9", batch_timeout_ms=120_000, max_batch_size=10,
                        topics=unique_topics())
    spectra, reference = settings.topics.spectra, settings.topics.reference

    async def batch() -> list[tuple[str, int, int]]:
        consumer = BatchConsumer(settings, WorkerMetrics(), holder=None)
        consumer.monitor.add_prediction("S1", pending(1, 0.0), partition=0)
        consumer.consumer = consumer.join_state.consumer = ScriptedConsumer(consumer.join_state, [
            (False, [(spectra, 0, 7), (reference, 0, 3)]),  # fetched before the rebalance
            (rebalance, [(spectra, 1, 4)]),  # fetched after it
            (False, []),  # nothing more: the batch is complete
        ])
        records = await consumer._next_batch()
        assert consumer.join_state.epoch == (2 if rebalance else 0)
        assert len(consumer.monitor.predictions) == (0 if rebalance else 1)  # the listener forgot partition 0's state
        return [(r.topic, r.partition, r.offset) for r in records]

    after = [(spectra, 1, 4)]
    assert run(batch()) == (after if rebalance else [(spectra, 0, 7), (reference, 0, 3), *after])
