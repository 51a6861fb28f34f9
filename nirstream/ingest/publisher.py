"""Send one message at a time and wait until the broker has it (acks=all); while the broker cannot be
reached, retry the same message with growing pauses. Nothing is dropped: the caller gets either the
acknowledgement, ``MessageRefused`` (the broker will never take this record, e.g. too large), or
``Stopped`` (asked to stop while waiting; the message may or may not have arrived).

Retries can repeat: a send that timed out or whose acknowledgement was lost may already be on the broker,
and is sent again (aiokafka's own retries, too, run without idempotence). The producer is not idempotent
because idempotence needs the broker's InitProducerId, which the embedded test broker (Tansu, memory
storage) refuses; and it would not cover this loop's retries, each of which starts a fresh producer.
A repeat is the same record: consumers drop it by ``message_id``.

The retrying is nirstream's one publisher (``nirstream.kafka.publisher``); this module says what the bridge does
meanwhile: a fresh producer after each failure, and the exceptions above."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from nirstream.kafka.backoff import Backoff, pause_unless_stopped
from nirstream.kafka.publisher import Outgoing, RetryingPublisher

log = logging.getLogger(__name__)

BACKOFF = Backoff(first=0.5, ceiling=15.0)
RETRIABLE = (KafkaError, OSError, asyncio.TimeoutError)


class MessageRefused(Exception):
    """The broker refuses this record for what it is; sending it again would fail the same way."""


class Stopped(Exception):
    """Asked to stop before the message was acknowledged."""


class BrokerUnavailable(Exception):
    """The broker could not be reached in the attempts allowed (``--once``: a cron run must end, not wait forever)."""


class SpectrumPublisher:
    def __init__(self, client_options: dict[str, Any], topic: str, stop: asyncio.Event, attempts: int | None = None) -> None:
        """``client_options``: producer options (``SharedSettings.kafka_producer_options``: acks=all, idempotence);
        ``attempts``: failed sends of one message before ``BrokerUnavailable`` (None: retry until stopped)."""
        self.client_options, self.topic, self.stop, self.attempts = client_options, topic, stop, attempts
        self._producer: AIOKafkaProducer | None = None
        self._publisher = RetryingPublisher(self._started, BACKOFF, stopping=stop.is_set,
                                            sleep=lambda seconds: pause_unless_stopped(stop, seconds),
                                            refused=self._refused, on_retry=self._retrying,
                                            on_recovered=lambda: log.warning("broker reachable again: published"))

    async def _started(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = AIOKafkaProducer(**self.client_options)
            try:
                await producer.start()
            except BaseException:
                await self._close(producer)
                raise
            self._producer = producer
        return self._producer

    async def publish(self, key: bytes, value: bytes) -> None:
        """Return once the broker acknowledged ``value``."""
        if self.stop.is_set() or not await self._publisher.publish([Outgoing(self.topic, key, value)]):
            raise Stopped

    @staticmethod
    def _refused(message: Outgoing, error: BaseException) -> None:
        raise MessageRefused(f"{type(error).__name__}: {error}") from None

    async def _retrying(self, pending: list[Outgoing], error: BaseException | None, attempt: int, pause: float) -> None:
        if not isinstance(error, RETRIABLE):
            raise error  # not a broker that is away: a bug, not retried
        await self.close()  # a fresh producer reconnects from scratch, even after a failed start
        if self.attempts is not None and attempt >= self.attempts:
            raise BrokerUnavailable(f"{attempt} sends to {self.topic} failed, the last with "
                                    f"{type(error).__name__}: {error}") from None
        log.warning("cannot publish to %s (%s: %s); retrying in %.1f s", self.topic, type(error).__name__, error, pause)

    async def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await self._close(producer)

    @staticmethod
    async def _close(producer: AIOKafkaProducer) -> None:
        try:
            await asyncio.wait_for(producer.stop(), timeout=10.0)
        except (KafkaError, OSError, asyncio.TimeoutError) as exc:
            log.debug("producer stop: %s", exc)
