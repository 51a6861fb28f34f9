"""The batch consumer fetches, publishes and commits: aiokafka ``getmany`` micro-batches; what a batch
becomes is decided elsewhere (``batch_processing.process_batch``: predictions and dead letters;
``lab_join.join_lab_values``: labelled pairs and refused lab values) and counted in ``metrics``.

Faust's per-event path costs ~170 µs a message, more than the model itself, so the hot path
reads raw batches with aiokafka inside a faust-managed service. Delivery is at-least-once:
offsets are committed only after every prediction and dead letter of the batch is
acknowledged. A send that fails for a reason retrying cannot fix (message too large, invalid
record) is handled per record: a compact dead letter says what could not be published. Other send
failures (broker away) are retried with back-off, the batch kept in memory, never re-read in a loop;
meanwhile ``/ready`` is false and ``nirstream_publish_retries_total`` counts. The lab join's state goes to its
changelog with the batch and is restored when partitions are assigned (``join_state``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from typing import NamedTuple

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import CommitFailedError, KafkaError
from mode import Service

from nirstream.core.artifacts.bundle import BundleError
from nirstream.core.errors import RejectReason
from nirstream.kafka.send_errors import PERMANENT_SEND_ERRORS
from nirstream.stream.batch_processing import BatchPolicy, InboundRecord, dead_letter, process_batch
from nirstream.stream.join_state import JoinStateKeeper, require_partitions
from nirstream.stream.lab_join import join_lab_values
from nirstream.stream.metrics import WorkerMetrics
from nirstream.stream.model_holder import ModelHolder
from nirstream.stream.lab_join_store import OnlineMonitor
from nirstream.stream.settings import Settings
from nirstream.stream.topics import ensure_topics

log = logging.getLogger(__name__)

MAX_PUBLISH_BACKOFF_SECONDS = 30.0


class Outgoing(NamedTuple):
    topic: str
    key: bytes | None
    value: bytes | None  # None: a tombstone (lab-join changelog)
    replacement: bool = False  # already the dead letter that stands in for an unpublishable message
    partition: int | None = None  # None: by key (the lab-join changelog names it: that of the record it came from)


class BatchConsumer(Service):
    """Consumes the spectra topic in micro-batches and publishes predictions and dead letters."""

    def __init__(self, settings: Settings, metrics: WorkerMetrics, holder: ModelHolder, **kwargs):
        super().__init__(**kwargs)
        self.settings = settings
        self.metrics = metrics
        self.holder = holder
        self.policy = BatchPolicy(
            max_message_bytes=settings.max_message_bytes,
            saturation_limit=settings.saturation_limit,
            known_analyzers=frozenset(settings.known_analyzers) if settings.known_analyzers else None,
            worker_name=settings.worker_name or f"{socket.gethostname()}:{os.getpid()}",
        )
        self.consumer: AIOKafkaConsumer | None = None
        self.producer: AIOKafkaProducer | None = None
        self.consuming = False
        self.broker_reachable = True
        self.publishing_ok = True
        self.batches_done = 0
        self.monitor = OnlineMonitor(settings.join_retention_seconds, settings.join_capacity, settings.rmsep_window)
        self.join_state = JoinStateKeeper(settings, self.monitor, metrics, self._drain)
        self._delivering: asyncio.Task | None = None  # the newest batch going out (it awaits the one before it)

    @property
    def ready(self) -> bool:
        return (self.holder.current is not None and self.consuming and self.broker_reachable and self.publishing_ok
                and not self.join_state.restoring)

    async def on_start(self) -> None:
        options = self.settings.kafka_client_options()
        await ensure_topics(self.settings)
        self.producer = AIOKafkaProducer(
            **options, acks="all", linger_ms=2, enable_idempotence=False, max_request_size=4 * self.settings.max_message_bytes
        )
        await self.producer.start()
        await require_partitions(self.producer, self.settings)
        self.consumer = AIOKafkaConsumer(
            **options,
            group_id=self.settings.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=self.settings.session_timeout_ms,
            heartbeat_interval_ms=self.settings.heartbeat_interval_ms,
            fetch_max_wait_ms=self.settings.fetch_max_wait_ms,
            max_partition_fetch_bytes=max(1 << 20, 2 * self.settings.max_message_bytes),
            fetch_max_bytes=max(50 << 20, 2 * self.settings.max_message_bytes),
            partition_assignment_strategy=(RangePartitionAssignor,),  # partition p of both topics to the same worker
        )
        self.join_state.consumer = self.consumer
        # reference is co-partitioned with spectra (see monitoring.py); the listener restores and drops the join state
        self.consumer.subscribe([self.settings.topics.spectra, self.settings.topics.reference], listener=self.join_state)

    async def on_stop(self) -> None:
        self.consuming = False
        self.metrics.ready.set(0)
        await self.join_state.close()
        if self.consumer is not None:
            await self.consumer.stop()  # the last batch was committed before the loop ended
        if self.producer is not None:
            await self.producer.stop()

    @Service.task
    async def _run(self) -> None:
        joined = self._champion_named()
        if joined:
            # Join the group while the first model loads: the broker holds a join ~3 s, TensorFlow's import takes
            # longer. Only when a champion is named, so that a worker without any model holds no partitions.
            await asyncio.gather(self.holder.sync_with_champion(), self.consumer.start())
        while not self.should_stop and self.holder.current is None:
            await self.holder.sync_with_champion()
            if self.holder.current is None:
                log.warning("no champion model in %s yet; waiting before consuming", self.holder.registry.base)
                await self.sleep(self.settings.registry_poll_seconds)
        if self.should_stop:
            return
        if not joined:
            await self.consumer.start()
        self.consuming = True
        self.metrics.ready.set(1)
        log.info("consuming %s as group %s", self.settings.topics.spectra, self.settings.group_id)
        # Pipelined: batch k+1 is fetched, decoded, preprocessed and predicted while the broker acknowledges batch k's
        # predictions; k+1 is published only after k is committed, so offsets are committed in order and a crash
        # replays at most these two batches. (In the event loop's own thread: a worker thread measured slower, its
        # per-message Python work and the loop's network I/O fight over the GIL.)
        try:
            while not self.should_stop:
                records = await self._next_batch()
                if not records:
                    continue
                prepared = self._prepare(records)
                previous = self._delivering
                self._delivering = asyncio.create_task(self._deliver_after(previous, *prepared))
                if previous is not None:
                    await previous
        finally:
            await self._drain()  # the last batch goes out and is committed before the consumer stops

    async def _drain(self) -> None:
        """Wait until every prepared batch is published and committed (also before partitions are revoked)."""
        if self._delivering is not None:
            await asyncio.shield(self._delivering)  # a cancelled waiter must not cancel the delivery

    def _champion_named(self) -> bool:
        try:
            return self.holder.registry.champion() is not None
        except BundleError:
            return False  # an unreadable pointer: the wait loop below reports it

    async def _next_batch(self) -> list[InboundRecord]:
        """Up to max_batch_size records, waiting at most batch_timeout_ms after the first one."""
        limit = self.settings.max_batch_size
        fetched = await self.consumer.getmany(timeout_ms=200, max_records=limit)
        epoch = self.join_state.epoch
        records = self._flatten(fetched)
        if not records:
            return records
        deadline = time.monotonic() + self.settings.batch_timeout_ms / 1000
        while len(records) < limit and (remaining := deadline - time.monotonic()) > 0:
            more = self._flatten(await self.consumer.getmany(timeout_ms=int(remaining * 1000), max_records=limit - len(records)))
            if self.join_state.epoch != epoch:
                # A rebalance in between: the records before it are read again from the committed offsets
                records, epoch = [], self.join_state.epoch
            if not more:
                break
            records.extend(more)
        return records

    @staticmethod
    def _flatten(fetched) -> list[InboundRecord]:
        now = time.time()
        return [
            InboundRecord(m.topic, m.partition, m.offset, m.key, m.value, now)
            for messages in fetched.values()
            for m in messages
        ]

    def _prepare(self, records: list[InboundRecord]):
        """Predict a batch and join its lab values: everything but publishing and committing."""
        started = time.perf_counter()
        predictor = self.holder.current  # read once: a swap lands between batches
        topics = self.settings.topics
        spectra = [r for r in records if r.topic != topics.reference]
        predicted = process_batch(spectra, predictor, self.policy)
        joined = join_lab_values(predicted, predictor, [r for r in records if r.topic == topics.reference], self.monitor,
                                 self.policy.worker_name)
        return records, predictor, predicted, joined, started

    async def _deliver_after(self, previous: asyncio.Task | None, *prepared) -> None:
        if previous is not None:
            await previous  # batches go out in order, so offsets are committed in order
        await self._deliver(*prepared)

    async def _deliver(self, records, predictor, predicted, joined, started: float) -> None:
        """Publish, commit, observe: a batch's offsets are committed only after all its outcomes and its lab-join
        state went out; the "joined" records only after the pairs they stand for (a crash between the two replays
        a pair with the same message id instead of losing it)."""
        topics = self.settings.topics
        outgoing = ([Outgoing(topics.predictions, k, v) for k, v in predicted.predictions]
                    + [Outgoing(topics.deadletter, k, v) for k, v in predicted.dead_letters + joined.dead_letters]
                    + [Outgoing(topics.labelled, k, v) for k, v in joined.labelled]
                    + [Outgoing(topics.lab_join, k, v, partition=p) for p, k, v in joined.state_records])
        if not await self._publish(outgoing):
            return  # stopping while the broker was away: the batch is re-read after the restart
        joined_records = [Outgoing(topics.lab_join, k, v, partition=p) for p, k, v in joined.joined_records]
        if joined_records and not await self._publish(joined_records):
            return
        await self._commit(records)
        self.metrics.observe_batch(len(records), predicted, joined, time.perf_counter() - started, predictor.targets)
        self.metrics.observe_lab_join(joined, self.monitor)
        self.batches_done += 1

    async def _publish(self, outgoing: list[Outgoing]) -> bool:
        """Send every message and wait for the acks; False only if the worker is stopping before they all went out."""
        pending, attempt = outgoing, 0
        while pending:
            retry = []
            for message, outcome in zip(pending, await self._send_all(pending), strict=True):
                if outcome is None:
                    continue
                if isinstance(outcome, PERMANENT_SEND_ERRORS):
                    replacement = self._unpublishable(message, outcome)
                    if replacement is not None:
                        retry.append(replacement)
                else:
                    retry.append(message)
            pending = retry
            if not pending:
                break
            attempt += 1
            delay = min(MAX_PUBLISH_BACKOFF_SECONDS, 0.2 * 2**attempt)
            self.metrics.publish_retries.inc(len(pending))
            if self.publishing_ok:
                log.warning("publishing %d message(s) failed; retrying with back-off (not ready until they go out)", len(pending))
            self.publishing_ok = False
            self.metrics.ready.set(0)
            await self.sleep(delay)
            if self.should_stop:
                return False
        if not self.publishing_ok:
            log.warning("publishing works again")
        self.publishing_ok = True
        return True

    async def _send_all(self, messages: list[Outgoing]) -> list[BaseException | None]:
        """Send a batch of messages; the error of each that failed (None where acknowledged)."""
        futures: list = []
        for message in messages:
            try:
                futures.append(await self.producer.send(message.topic, message.value, key=message.key, partition=message.partition))
            except Exception as exc:  # noqa: BLE001 - e.g. MessageSizeTooLargeError raised before sending
                futures.append(exc)
        waiting = [f for f in futures if not isinstance(f, BaseException)]
        results = iter(await asyncio.gather(*waiting, return_exceptions=True))
        return [f if isinstance(f, BaseException) else (r if isinstance(r := next(results), BaseException) else None)
                for f in futures]

    def _unpublishable(self, message: Outgoing, error: BaseException) -> Outgoing | None:
        """A compact dead letter in place of a message the broker will never take; None if that was one already."""
        topic, key, value, replacement, _ = message
        value = value or b""
        self.metrics.unpublishable.labels(topic=topic).inc()
        log.error("a %d-byte message for %s cannot be published (%s): replaced by a dead letter", len(value), topic, error)
        if replacement:
            return None  # even the compact replacement was refused: counted and logged, never retried
        record = InboundRecord(topic, -1, -1, key, value)
        detail = f"this worker's {len(value)}-byte message for {topic} was refused: {type(error).__name__}: {error}"
        self.metrics.dead_letters.labels(reason=RejectReason.UNPUBLISHABLE.value).inc()
        return Outgoing(self.settings.topics.deadletter, key,
                        dead_letter(record, RejectReason.UNPUBLISHABLE, detail, self.policy.worker_name), replacement=True)

    async def _commit(self, records: list[InboundRecord]) -> None:
        offsets: dict[TopicPartition, int] = {}
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            offsets[tp] = max(offsets.get(tp, 0), r.offset + 1)
        try:
            await self.consumer.commit(offsets)
        except (CommitFailedError, KafkaError) as exc:
            # e.g. partitions moved to another worker mid-batch: it re-reads them (duplicates, same ids)
            self.metrics.commit_failures.inc()
            log.warning("offset commit failed (%s); the batch may be processed again", exc)

    @Service.timer(1.0)
    async def _probe_broker(self) -> None:
        """A metadata round trip: readiness turns false while the broker cannot be reached."""
        if self.producer is None:
            return
        try:
            await asyncio.wait_for(self.producer.client.fetch_all_metadata(), timeout=2.0)
            reachable = True
        except (KafkaError, OSError, asyncio.TimeoutError):
            reachable = False
        if reachable != self.broker_reachable:
            log.warning("broker %s", "reachable again" if reachable else "unreachable: not ready until it is back")
        self.broker_reachable = reachable
        self.metrics.ready.set(1 if self.ready else 0)

    @Service.timer(2.0)
    async def _report_lag(self) -> None:
        if not self.consuming:
            return
        for tp in self.consumer.assignment():
            highwater = self.consumer.highwater(tp)
            if highwater is None:
                continue
            position = await self.consumer.position(tp)
            self.metrics.consumer_lag.labels(topic=tp.topic, partition=str(tp.partition)).set(max(highwater - position, 0))
