"""The batch consumer fetches, publishes and commits: aiokafka ``getmany`` micro-batches; what a batch
becomes is decided elsewhere (``batch_processing.process_batch``: predictions and dead letters;
``lab_join.join_lab_values``: labelled pairs and refused lab values) and counted in ``metrics``.

Faust's per-event path costs ~170 µs a message, more than the model itself, so the hot path
reads raw batches with aiokafka inside a faust-managed service. A batch is decoded, predicted and encoded in one
worker thread (``process_batch``), so that the event loop meanwhile takes the previous batch's acknowledgements,
commits it and sends its own messages: ONNX Runtime and NumPy release the GIL, and the broker's round trips no longer
leave the worker's core idle between two batches. Delivery is at-least-once:
offsets are committed only after every prediction and dead letter of the batch is
acknowledged. A send that fails for a reason retrying cannot fix (message too large, invalid
record) is handled per record: a compact dead letter says what could not be published. Other send
failures (broker away) are retried with back-off, the batch kept in memory, never re-read in a loop;
meanwhile ``/ready`` is false and ``nirstream_publish_retries_total`` counts. The lab join's state goes to its
changelog with the batch and is restored when partitions are assigned (``join_state``).

Split by job, the way aiokafka splits its own consumer: the clients are set up in ``worker_clients``, batches
assembled in ``batch_fetch``, published with retries in ``batch_publishing``, committed in ``batch_commit``,
readiness probed in ``readiness``; this service runs the pipeline that ties them together.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from concurrent.futures import ThreadPoolExecutor

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from mode import Service

from nirstream.core.artifacts.bundle import BundleError
from nirstream.kafka.publisher import Outgoing
from nirstream.stream.batch_commit import commit_batch
from nirstream.stream.batch_fetch import fetch_batch
from nirstream.stream.batch_processing import BatchPolicy, InboundRecord, process_batch
from nirstream.stream.batch_publishing import BatchPublishing
from nirstream.stream.join_state import JoinStateKeeper, require_partitions
from nirstream.stream.lab_join import join_lab_values
from nirstream.stream.lab_join_store import OnlineMonitor
from nirstream.stream.metrics import WorkerMetrics
from nirstream.stream.model_holder import ModelHolder
from nirstream.stream.readiness import BrokerWatch, report_lag
from nirstream.stream.settings import Settings
from nirstream.stream.topics import ensure_topics
from nirstream.stream.worker_clients import batch_consumer, batch_producer

log = logging.getLogger(__name__)


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
        self.broker = BrokerWatch()
        self.publishing = BatchPublishing(lambda: self.producer, metrics, settings.topics.deadletter, self.policy.worker_name,
                                          stopping=lambda: self.should_stop, sleep=self.sleep)
        self.batches_done = 0
        self.monitor = OnlineMonitor(settings.join_retention_seconds, settings.join_capacity, settings.rmsep_window,
                                     time_analyzers=settings.time_join_analyzers,
                                     time_window=settings.time_join_window_seconds, time_mode=settings.time_join_mode,
                                     time_capacity=settings.time_join_capacity)
        self.join_state = JoinStateKeeper(settings, self.monitor, metrics, self._drain)
        self._delivering: asyncio.Task | None = None  # the newest batch going out (it awaits the one before it)
        self._batch_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nirstream-batch")

    @property
    def ready(self) -> bool:
        return (self.holder.current is not None and self.consuming and self.broker.reachable and self.publishing.ok
                and not self.join_state.restoring)

    async def on_start(self) -> None:
        await ensure_topics(self.settings)
        self.producer = batch_producer(self.settings)
        await self.producer.start()
        await require_partitions(self.producer, self.settings)
        self.consumer = batch_consumer(self.settings)
        self.join_state.consumer = self.consumer
        # reference is co-partitioned with spectra (see monitoring.py); the listener restores and drops the join state
        self.consumer.subscribe([self.settings.topics.spectra, self.settings.topics.reference], listener=self.join_state)

    async def on_stop(self) -> None:
        self.consuming = False
        self.metrics.ready.set(0)
        # The service stops before its tasks are cancelled: the batch being published must be committed before the
        # consumer stops, or a clean stop would replay it (a batch still being predicted is dropped by _run, unsent)
        await self._drain()
        await self.join_state.close()
        if self.consumer is not None:
            await self.consumer.stop()
        if self.producer is not None:
            await self.producer.stop()
        self._batch_thread.shutdown(wait=False)

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
        # Pipelined: batch k+1 is fetched, decoded, preprocessed and predicted (in the batch thread) while the event loop
        # publishes batch k and the broker acknowledges it; k+1 is published only after k is committed, so offsets are
        # committed in order and a crash replays at most these two batches.
        try:
            while not self.should_stop:
                records = await self._next_batch()
                if not records:
                    continue
                epoch = self.join_state.epoch
                prepared = await self._prepare(records)
                if self.join_state.epoch != epoch or self.should_stop:
                    # a rebalance or a stop while predicting: nothing of it was sent, and these records are read
                    # again from the committed offsets
                    continue
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
        return await fetch_batch(self.consumer, self.settings.max_batch_size, self.settings.batch_timeout_ms,
                                 lambda: self.join_state.epoch)

    async def _prepare(self, records: list[InboundRecord]):
        """Predict a batch (in the batch thread) and join its lab values (in the loop, which owns the join state):
        everything but publishing and committing."""
        started = time.perf_counter()
        predictor = self.holder.current  # read once: a swap lands between batches
        topics = self.settings.topics
        spectra = [r for r in records if r.topic != topics.reference]
        predicted = await asyncio.get_running_loop().run_in_executor(self._batch_thread, process_batch, spectra, predictor,
                                                                     self.policy)
        joined = join_lab_values(predicted, predictor, [r for r in records if r.topic == topics.reference], self.monitor,
                                 self.policy.worker_name, reference_topic=topics.reference)
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
        if not await self.publishing.publish(outgoing):
            return  # stopping while the broker was away: the batch is re-read after the restart
        joined_records = [Outgoing(topics.lab_join, k, v, partition=p) for p, k, v in joined.joined_records]
        if joined_records and not await self.publishing.publish(joined_records):
            return
        await commit_batch(self.consumer, records, self.metrics)
        self.metrics.observe_batch(len(records), predicted, joined, time.perf_counter() - started, predictor.targets)
        self.metrics.observe_lab_join(joined, self.monitor)
        self.batches_done += 1

    @Service.timer(1.0)
    async def _probe_broker(self) -> None:
        """A metadata round trip: readiness turns false while the broker cannot be reached."""
        if self.producer is None:
            return
        await self.broker.probe(self.producer)
        self.metrics.ready.set(1 if self.ready else 0)

    @Service.timer(2.0)
    async def _report_lag(self) -> None:
        if self.consuming:
            await report_lag(self.consumer, self.metrics)
