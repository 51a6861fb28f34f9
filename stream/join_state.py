"""The lab join's state in Kafka: a changelog written with every batch and read back when partitions are assigned.

Lab values arrive hours after their spectra, so a worker holds predictions (with their spectra) and early lab
values in memory (``monitoring.OnlineMonitor``). To survive a restart, or a partition moving to another
worker, every change of that state goes to the changelog topic (``nirstream.lab-join``), keyed by sample
id, in the partition number of the spectrum or lab value it came from:

* ``prediction``: a prediction waiting for its lab value (analyzer, message id, model version, predicted
  values, flag, grid, and the spectrum as base64 float32);
* ``spectrum``: a prediction of a spectrum without sample id, with its acquisition time, kept for lab values
  joined by sampling time (key: ``SPECTRUM_KEY`` + message id; ``time_join_analyzers`` only);
* ``reference``: a lab value waiting for its prediction (or, joined by time, for its window to close; key
  ``analyzer@sampling time``);
* ``joined``: the pair went out; the sample id (or time key) is not joined again (a replayed batch is ignored);
* a tombstone (no value): the entry was forgotten (older than ``join_retention_seconds``, or over capacity).

The consumer publishes a batch's state records with its predictions, and its ``joined`` records only after
the pairs themselves were acknowledged, then commits the batch's offsets (``consumer.BatchConsumer._deliver``):
committed offsets never run ahead of the state. On assignment the worker pauses the new partitions, reads
their changelog partitions from the beginning to the end (the last record per sample id wins, tombstones
delete, entries older than the retention are left out) and resumes them; on revocation it lets the batches in
flight be committed and forgets the revoked partitions' entries.

Why not a faust table: faust tables are restored and kept by faust's own consumer, which this worker switches
off (``enable_kafka_consumer = False`` in ``app.py``: it reads batches with aiokafka, ``consumer.py``), and a
table's changelog follows faust's per-event commits, not this pipeline's batch offsets. The changelog here is
the same idea, sized to the batch pipeline. On Kafka the topic is compacted (``topics.topic_configs``); the
embedded broker keeps every record, so a restore reads more there, but reads the same state.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition

from nirstream.kafka.topic_reader import read_latest
from nirstream.stream.join_changelog import fold
from nirstream.stream.lab_join_store import OnlineMonitor
from nirstream.stream.metrics import WorkerMetrics
from nirstream.stream.settings import Settings

log = logging.getLogger(__name__)

RESTORE_RETRY_SECONDS = 2.0


async def require_partitions(producer: AIOKafkaProducer, settings: Settings) -> None:
    """Refuse to start when the changelog has fewer partitions than the topics whose state it keeps."""
    topics = settings.topics
    changelog = len(await producer.partitions_for(topics.lab_join))
    needed = max(len(await producer.partitions_for(topics.spectra)), len(await producer.partitions_for(topics.reference)))
    if changelog < needed:
        raise ValueError(f"topic {topics.lab_join} has {changelog} partition(s), {topics.spectra}/{topics.reference} "
                         f"{needed}: the lab-join state of partition p is kept in its partition p; add partitions to it")


class JoinStateKeeper(ConsumerRebalanceListener):
    """Keeps the monitor's join state to the partitions this worker owns: restores assigned partitions from the
    changelog before any of their records is processed, forgets revoked ones once the batches in flight are
    committed."""

    def __init__(self, settings: Settings, monitor: OnlineMonitor, metrics: WorkerMetrics,
                 drain: Callable[[], Awaitable[None]]):
        self.settings, self.monitor, self.metrics = settings, monitor, metrics
        self.consumer: AIOKafkaConsumer | None = None  # the batch consumer, set once it exists
        self.epoch = 0  # +1 at every rebalance: records fetched before it are stale (read again from committed offsets)
        self._drain = drain
        self._restoring: asyncio.Task | None = None

    @property
    def restoring(self) -> bool:
        return self._restoring is not None and not self._restoring.done()

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.epoch += 1
        await self.close()
        try:
            await self._drain()  # committed while the partitions are still ours, and their state written before that
        except Exception:  # noqa: BLE001 - the batch loop reports its own failure; the state must still go
            log.exception("a batch in flight failed while partitions were revoked")
        dropped = self.monitor.drop_partitions({tp.partition for tp in revoked})
        if dropped:
            log.info("partitions revoked: forgot %d lab-join entries (the next owner restores them)", dropped)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        # Paused before anything is awaited: none of their records is fetched until their state is back. Restored in
        # a task, so that the group's heartbeats go on meanwhile (aiokafka starts them after this callback).
        self.epoch += 1
        if not assigned:
            return
        self.consumer.pause(*assigned)
        self._restoring = asyncio.create_task(self._restore(assigned))

    async def close(self) -> None:
        """Stop a restore in progress (its partitions stay paused; a new assignment restores them again)."""
        if self.restoring:
            self._restoring.cancel()
            await asyncio.wait([self._restoring])

    async def _restore(self, assigned: set[TopicPartition]) -> None:
        partitions = sorted({tp.partition for tp in assigned})
        started = time.perf_counter()
        while True:
            try:
                latest = await read_latest(self.settings.kafka_client_options(), self.settings.topics.lab_join, partitions,
                                           max(50 << 20, 4 * self.settings.max_message_bytes))
                break
            except Exception as exc:  # noqa: BLE001 - the partitions wait (paused, /ready 503) rather than lose state
                log.warning("reading the lab-join state of partitions %s failed (%s); retrying", partitions, exc)
                await asyncio.sleep(RESTORE_RETRY_SECONDS)
        now = time.time()
        try:
            entries = [e for p in partitions for e in fold(p, latest[p], now, self.settings.join_retention_seconds)]
            self.monitor.drop_partitions(set(partitions))  # what an earlier ownership left
            self.monitor.restore(entries, now)
        except Exception:  # noqa: BLE001 - a bug here must not leave the partitions paused while /ready says 200
            log.exception("restoring the lab-join state of partitions %s failed: they are served without it", partitions)
            self.monitor.drop_partitions(set(partitions))
            entries = []
        finally:
            self.consumer.resume(*assigned)
        self.metrics.join_restored.inc(len(entries))
        log.info("restored %d lab-join entries of partitions %s in %.2f s", len(entries), partitions,
                 time.perf_counter() - started)
