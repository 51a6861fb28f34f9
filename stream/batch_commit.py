"""Commit a published batch's offsets: per partition, one past the last record read."""

from __future__ import annotations

import logging

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError

from nirstream.stream.batch_processing import InboundRecord
from nirstream.stream.metrics import WorkerMetrics

log = logging.getLogger(__name__)


async def commit_batch(consumer: AIOKafkaConsumer, records: list[InboundRecord], metrics: WorkerMetrics) -> None:
    offsets: dict[TopicPartition, int] = {}
    for r in records:
        tp = TopicPartition(r.topic, r.partition)
        offsets[tp] = max(offsets.get(tp, 0), r.offset + 1)
    try:
        await consumer.commit(offsets)
    except (CommitFailedError, KafkaError) as exc:
        # e.g. partitions moved to another worker mid-batch: it re-reads them (duplicates, same ids)
        metrics.commit_failures.inc()
        log.warning("offset commit failed (%s); the batch may be processed again", exc)
