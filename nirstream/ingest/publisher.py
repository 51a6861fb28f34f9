"""Send one message at a time and wait until the broker has it (acks=all); while the broker cannot be
reached, retry the same message with growing pauses. Nothing is dropped: the caller gets either the
acknowledgement, ``MessageRefused`` (the broker will never take this record, e.g. too large), or
``Stopped`` (asked to stop while waiting; the message may or may not have arrived).

Retries can repeat: a send that timed out or whose acknowledgement was lost may already be on the broker,
and is sent again (aiokafka's own retries, too, run without idempotence). The producer is not idempotent
because idempotence needs the broker's InitProducerId, which the embedded test broker (Tansu, memory
storage) refuses; and it would not cover this loop's retries, each of which starts a fresh producer.
A repeat is the same record: consumers drop it by ``message_id``."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from nirstream.kafka.send_errors import PERMANENT_SEND_ERRORS

log = logging.getLogger(__name__)

FIRST_BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 15.0


class MessageRefused(Exception):
    """The broker refuses this record for what it is; sending it again would fail the same way."""


class Stopped(Exception):
    """Asked to stop before the message was acknowledged."""


class BrokerUnavailable(Exception):
    """The broker could not be reached in the attempts allowed (``--once``: a cron run must end, not wait forever)."""


class SpectrumPublisher:
    def __init__(self, client_options: dict[str, Any], topic: str, stop: asyncio.Event, attempts: int | None = None) -> None:
        """``attempts``: failed sends of one message before ``BrokerUnavailable`` (None: retry until stopped)."""
        self.client_options, self.topic, self.stop, self.attempts = client_options, topic, stop, attempts
        self._producer: AIOKafkaProducer | None = None

    async def _started(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = AIOKafkaProducer(**self.client_options, acks="all")
            try:
                await producer.start()
            except BaseException:
                await self._close(producer)
                raise
            self._producer = producer
        return self._producer

    async def publish(self, key: bytes, value: bytes) -> None:
        """Return once the broker acknowledged ``value``."""
        backoff, failures = FIRST_BACKOFF_SECONDS, 0
        while True:
            if self.stop.is_set():
                raise Stopped
            try:
                producer = await self._started()
                await producer.send_and_wait(self.topic, value, key=key)
                if backoff > FIRST_BACKOFF_SECONDS:
                    log.warning("broker reachable again: published")
                return
            except PERMANENT_SEND_ERRORS as exc:
                raise MessageRefused(f"{type(exc).__name__}: {exc}") from None
            except (KafkaError, OSError, asyncio.TimeoutError) as exc:
                failures += 1
                await self.close()  # a fresh producer reconnects from scratch, even after a failed start
                if self.attempts is not None and failures >= self.attempts:
                    raise BrokerUnavailable(f"{failures} sends to {self.topic} failed, the last with "
                                            f"{type(exc).__name__}: {exc}") from None
                log.warning("cannot publish to %s (%s: %s); retrying in %.1f s", self.topic, type(exc).__name__, exc, backoff)
            try:
                await asyncio.wait_for(self.stop.wait(), timeout=backoff)
            except asyncio.TimeoutError:
                pass
            backoff = min(2 * backoff, MAX_BACKOFF_SECONDS)

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
