"""How the worker publishes a batch's outcomes (``nirstream.kafka.publisher.RetryingPublisher``): unsent messages
are re-sent from memory with back-off (0.4 s doubling to 30 s) while ``/ready`` is false and
``nirstream_publish_retries_total`` counts them; a message the broker refuses for good is replaced by a compact
``unpublishable`` dead letter (once: a refused replacement is counted and logged, never retried)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaProducer

from nirstream.core.errors import RejectReason
from nirstream.kafka.backoff import Backoff
from nirstream.kafka.publisher import Outgoing, RetryingPublisher
from nirstream.stream.batch_processing import InboundRecord, dead_letter
from nirstream.stream.metrics import WorkerMetrics

log = logging.getLogger(__name__)

PUBLISH_BACKOFF = Backoff(first=0.4, ceiling=30.0)


class BatchPublishing:
    """The worker's publisher and whether publishing works now (``ok``: part of ``/ready``)."""

    def __init__(self, producer: Callable[[], AIOKafkaProducer | None], metrics: WorkerMetrics, deadletter_topic: str,
                 worker_name: str, stopping: Callable[[], bool], sleep: Callable[[float], Awaitable[object]]):
        self.metrics, self.deadletter_topic, self.worker_name = metrics, deadletter_topic, worker_name
        self.ok = True

        async def started() -> AIOKafkaProducer:
            return producer()  # started with the worker, reconnects by itself

        self.publisher = RetryingPublisher(started, PUBLISH_BACKOFF, stopping=stopping, sleep=sleep,
                                           refused=self._unpublishable, on_retry=self._retrying, on_recovered=self._recovered)

    async def publish(self, outgoing: list[Outgoing]) -> bool:
        """Send every message and wait for the acks; False only if the worker is stopping before they all went out."""
        return await self.publisher.publish(outgoing)

    async def _retrying(self, pending: list[Outgoing], error: BaseException | None, attempt: int, pause: float) -> None:
        self.metrics.publish_retries.inc(len(pending))
        if self.ok:
            log.warning("publishing %d message(s) failed; retrying with back-off (not ready until they go out)", len(pending))
        self.ok = False
        self.metrics.ready.set(0)

    def _recovered(self) -> None:
        if not self.ok:
            log.warning("publishing works again")
        self.ok = True

    def _unpublishable(self, message: Outgoing, error: BaseException) -> Outgoing | None:
        """A compact dead letter in place of a message the broker will never take; None if that was one already."""
        topic, key, value, replacement, _ = message
        value = value or b""
        self.metrics.unpublishable.labels(topic=topic).inc()
        log.error("a %d-byte message for %s cannot be published (%s): replaced by a dead letter", len(value), topic, error)
        if replacement:
            self.metrics.dead_letters_lost.inc()
            return None
        record = InboundRecord(topic, -1, -1, key, value)
        detail = f"this worker's {len(value)}-byte message for {topic} was refused: {type(error).__name__}: {error}"
        self.metrics.dead_letters.labels(reason=RejectReason.UNPUBLISHABLE.value).inc()
        return Outgoing(self.deadletter_topic, key, dead_letter(record, RejectReason.UNPUBLISHABLE, detail, self.worker_name),
                        replacement=True)
