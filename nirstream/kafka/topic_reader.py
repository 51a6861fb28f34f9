"""One way to read topics without a consumer group (nothing committed): ``read_to_end`` reads partitions from
the beginning to the end they had when it was called; ``TopicFollower`` follows topics from their beginning or
their end, batch by batch, until told to stop, and can keep trying while the broker is away."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from nirstream.kafka.backoff import Backoff, pause_unless_stopped

log = logging.getLogger(__name__)

DEFAULT_FETCH_BYTES = 50 << 20


async def read_to_end(options: dict[str, Any], topic: str, partitions: Iterable[int] | None = None,
                      max_fetch_bytes: int = DEFAULT_FETCH_BYTES, timeout: float | None = None
                      ) -> AsyncIterator[ConsumerRecord]:
    """Every record of ``partitions`` of ``topic`` (None: all it has; none if it does not exist), from the
    beginning to the end as it was when called; with ``timeout``: what was read within that many seconds of
    the consumer's start."""
    consumer = AIOKafkaConsumer(**options, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest",
                                max_partition_fetch_bytes=max_fetch_bytes, fetch_max_bytes=max_fetch_bytes)
    await consumer.start()
    try:
        if partitions is None:
            await consumer.topics()  # fetches the cluster metadata that partitions_for_topic reads
            partitions = sorted(consumer.partitions_for_topic(topic) or ())
        tps = [TopicPartition(topic, p) for p in partitions]
        if not tps:
            return
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout

        async def unread(candidates) -> set[TopicPartition]:
            # The embedded broker (Tansu 0.6.0) reports the last batch's base offset + 1 as the end; the fetch's high
            # watermark is right: read up to the larger of the two.
            return {tp for tp in candidates if await consumer.position(tp) < max(ends[tp], consumer.highwater(tp) or 0)}

        remaining = await unread(tps)
        while remaining and (deadline is None or loop.time() < deadline):
            for messages in (await consumer.getmany(*remaining, timeout_ms=1000)).values():
                for message in messages:
                    yield message
            remaining = await unread(remaining)
    finally:
        await consumer.stop()


async def read_latest(options: dict[str, Any], topic: str, partitions: Iterable[int],
                      max_fetch_bytes: int = DEFAULT_FETCH_BYTES) -> dict[int, dict[bytes, bytes | None]]:
    """The last record per key of each of ``partitions`` of ``topic`` (what a compacted topic keeps)."""
    latest: dict[int, dict[bytes, bytes | None]] = {p: {} for p in partitions}
    async for message in read_to_end(options, topic, latest, max_fetch_bytes):
        if message.key is not None:
            latest[message.partition][message.key] = message.value
    return latest


class TopicFollower:
    """Reads ``topics`` from their beginning or their end until stopped, one fetch at a time.

    ``positioned`` (given or made) is set once every assigned partition's starting offset is known: from then on
    every later record is seen. With ``reconnect``, a broker that is away (at the start or later) only delays the reading; without it,
    its errors end the reading."""

    def __init__(self, options: dict[str, Any], *topics: str, from_beginning: bool, max_records: int | None = None,
                 fetch_timeout_ms: int = 200, reconnect: Backoff | None = None, positioned: asyncio.Event | None = None,
                 **consumer_settings: Any):
        self.topics, self.max_records, self.fetch_timeout_ms, self.reconnect = topics, max_records, fetch_timeout_ms, reconnect
        self.consumer = AIOKafkaConsumer(*topics, **options, group_id=None, enable_auto_commit=False,
                                         auto_offset_reset="earliest" if from_beginning else "latest", **consumer_settings)
        self.positioned = positioned or asyncio.Event()

    async def batches(self, stop: asyncio.Event) -> AsyncIterator[list[ConsumerRecord]]:
        """Each fetch's records (possibly none) until ``stop`` is set."""
        if not await self._start(stop):
            return
        pauses = None
        try:
            while not stop.is_set():
                try:
                    fetched = await self.consumer.getmany(timeout_ms=self.fetch_timeout_ms, max_records=self.max_records)
                    if not self.positioned.is_set():
                        await self._resolve_start()
                    pauses = None
                except KafkaError as exc:  # e.g. authorisation: keep trying
                    if self.reconnect is None:
                        raise
                    pauses = pauses or self.reconnect.pauses()
                    log.warning("reading %s failed (%s); retrying", ", ".join(self.topics), exc)
                    await pause_unless_stopped(stop, next(pauses))
                    continue
                yield [message for messages in fetched.values() for message in messages]
        finally:
            await self.consumer.stop()

    async def _start(self, stop: asyncio.Event) -> bool:
        if self.reconnect is None:
            await self.consumer.start()
            return True
        pauses = self.reconnect.pauses()
        while not stop.is_set():
            try:
                await self.consumer.start()
                return True
            except (KafkaError, OSError) as exc:
                log.warning("cannot reach Kafka (%s); retrying", exc)
                await pause_unless_stopped(stop, next(pauses))
        return False

    async def _resolve_start(self) -> None:
        assigned = self.consumer.assignment()
        if not assigned:
            return  # the topic does not exist yet, or its metadata has not arrived
        for partition in assigned:
            await self.consumer.position(partition)  # resolves "latest" to an offset
        self.positioned.set()
        log.info("reading %d partition(s) of %s", len(assigned), ", ".join(self.topics))
