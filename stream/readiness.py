"""What the worker's ``/ready`` and lag gauges are made of: broker reachability (a metadata probe every second) and
how far each assigned partition is behind its end."""

from __future__ import annotations

import logging

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from nirstream.kafka.probe import broker_reachable
from nirstream.stream.metrics import WorkerMetrics

log = logging.getLogger(__name__)


class BrokerWatch:
    """Readiness turns false while the broker cannot be reached; logs each change."""

    def __init__(self) -> None:
        self.reachable = True

    async def probe(self, producer: AIOKafkaProducer) -> None:
        reachable = await broker_reachable(producer.client)
        if reachable != self.reachable:
            log.warning("broker %s", "reachable again" if reachable else "unreachable: not ready until it is back")
        self.reachable = reachable


async def report_lag(consumer: AIOKafkaConsumer, metrics: WorkerMetrics) -> None:
    for tp in consumer.assignment():
        highwater = consumer.highwater(tp)
        if highwater is None:
            continue
        position = await consumer.position(tp)
        metrics.consumer_lag.labels(topic=tp.topic, partition=str(tp.partition)).set(max(highwater - position, 0))
