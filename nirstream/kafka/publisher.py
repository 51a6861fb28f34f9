"""One way to publish to Kafka until the broker has it: send a list of messages, wait for every
acknowledgement, re-send from memory only those that failed for a passing reason (broker away, leader moving)
after a growing pause, and hand each the broker refuses for good (``PERMANENT_SEND_ERRORS``) to the caller,
which may put a replacement in its place (the worker: a compact dead letter) or raise (the file bridge).

What a caller does while retrying (count, log, turn ``/ready`` false, start a fresh producer, give up after N
attempts) it says in ``on_retry``; the pauses come from ``backoff.Backoff`` and end early when it is stopping.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import NamedTuple

from aiokafka import AIOKafkaProducer

from nirstream.kafka.backoff import Backoff
from nirstream.kafka.send_errors import PERMANENT_SEND_ERRORS


class Outgoing(NamedTuple):
    topic: str
    key: bytes | None
    value: bytes | None  # None: a tombstone (lab-join changelog)
    replacement: bool = False  # already the message that stands in for an unpublishable one
    partition: int | None = None  # None: by key


async def send_all(producer: AIOKafkaProducer, messages: list[Outgoing]) -> list[BaseException | None]:
    """Send messages and wait for their acknowledgements; the error of each that failed (None where acknowledged)."""
    futures: list = []
    for message in messages:
        try:
            futures.append(await producer.send(message.topic, message.value, key=message.key, partition=message.partition))
        except Exception as exc:  # noqa: BLE001 - e.g. MessageSizeTooLargeError raised before sending
            futures.append(exc)
    waiting = [f for f in futures if not isinstance(f, BaseException)]
    results = iter(await asyncio.gather(*waiting, return_exceptions=True))
    return [f if isinstance(f, BaseException) else (r if isinstance(r := next(results), BaseException) else None)
            for f in futures]


Refused = Callable[[Outgoing, BaseException], Outgoing | None]
Retrying = Callable[[list[Outgoing], BaseException | None, int, float], Awaitable[None]]  # (unsent, last error, attempt, pause)


class RetryingPublisher:
    """Publishes lists of messages with at-least-once delivery (a retried send may already be on the broker)."""

    def __init__(self, producer: Callable[[], Awaitable[AIOKafkaProducer]], backoff: Backoff, *,
                 stopping: Callable[[], bool], sleep: Callable[[float], Awaitable[object]], refused: Refused,
                 on_retry: Retrying, on_recovered: Callable[[], None] = lambda: None):
        """``producer``: the started producer to send with (asked again at every attempt; raising counts as a failed
        attempt of every message); ``stopping``/``sleep``: the caller's stop flag and a pause it cuts short."""
        self.producer, self.backoff, self.stopping, self.sleep = producer, backoff, stopping, sleep
        self.refused, self.on_retry, self.on_recovered = refused, on_retry, on_recovered

    async def publish(self, messages: list[Outgoing]) -> bool:
        """Return True once every message (or its replacement) is acknowledged; False if the caller is stopping
        before they all went out."""
        pending, pauses, attempt = messages, self.backoff.pauses(), 0
        while pending:
            try:
                outcomes = await send_all(await self.producer(), pending)
            except Exception as exc:  # noqa: BLE001 - e.g. a producer that cannot start: every message failed
                outcomes = [exc] * len(pending)
            retry, error = [], None
            for message, outcome in zip(pending, outcomes, strict=True):
                if outcome is None:
                    continue
                if isinstance(outcome, PERMANENT_SEND_ERRORS):
                    replacement = self.refused(message, outcome)
                    if replacement is not None:
                        retry.append(replacement)
                else:
                    retry.append(message)
                    error = outcome
            pending = retry
            if not pending:
                break
            attempt += 1
            pause = next(pauses)
            await self.on_retry(pending, error, attempt, pause)
            await self.sleep(pause)
            if self.stopping():
                return False
        if attempt:
            self.on_recovered()
        return True
