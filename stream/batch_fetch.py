"""Assemble a micro-batch from aiokafka fetches: up to ``max_batch_size`` records, waiting at most
``batch_timeout_ms`` after the first; records fetched before a rebalance are left out (read again from the
committed offsets by whoever owns their partitions now)."""

from __future__ import annotations

import time
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer

from nirstream.stream.batch_processing import InboundRecord


async def fetch_batch(consumer: AIOKafkaConsumer, limit: int, timeout_ms: int, epoch: Callable[[], int]) -> list[InboundRecord]:
    """``epoch``: the rebalance count (``JoinStateKeeper.epoch``), read before and after each further fetch."""
    records = flatten(await consumer.getmany(timeout_ms=200, max_records=limit))
    seen = epoch()
    if not records:
        return records
    deadline = time.monotonic() + timeout_ms / 1000
    while len(records) < limit and (remaining := deadline - time.monotonic()) > 0:
        more = flatten(await consumer.getmany(timeout_ms=int(remaining * 1000), max_records=limit - len(records)))
        if epoch() != seen:
            records, seen = [], epoch()
        if not more:
            break
        records.extend(more)
    return records


def flatten(fetched) -> list[InboundRecord]:
    now = time.time()
    return [InboundRecord(m.topic, m.partition, m.offset, m.key, m.value, now) for messages in fetched.values() for m in messages]
