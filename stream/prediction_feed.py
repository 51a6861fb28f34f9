"""Follows the predictions topic for a live view (``nirstream opcua``): from the end of each partition, in
batches, without a consumer group (nothing is committed: a restart starts at the end again).

A record that is not a valid ``PredictionMessage`` with finite numbers is skipped, counted and logged; nothing a
producer sends, and no failure of the handler, stops the loop.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from contextlib import aclosing

from pydantic import ValidationError

from nirstream.core.messages.prediction import PredictionMessage
from nirstream.core.settings import SharedSettings
from nirstream.kafka.backoff import Backoff
from nirstream.kafka.topic_reader import TopicFollower
from nirstream.stream.log_sampling import worth_logging

log = logging.getLogger(__name__)

Handler = Callable[[PredictionMessage], Awaitable[object]]
RECONNECT = Backoff(first=1.0, ceiling=30.0)


class PredictionFeed:
    """Reads ``settings.topics.predictions`` from its latest offsets and hands each valid prediction to a handler."""

    def __init__(self, settings: SharedSettings, max_batch_size: int = 500):
        self.settings = settings
        self.max_batch_size = max_batch_size
        self.ready = asyncio.Event()  # set once every partition's starting offset is known: later records are seen
        self.received = 0
        self.bad_messages = 0
        self.handler_failures = 0
        self.last_prediction_at: float | None = None  # time.time() of the last valid prediction read

    async def run(self, handle: Handler, stop: asyncio.Event) -> None:
        """Until ``stop`` is set. The broker being away (at start or later) only delays: the values go stale meanwhile."""
        follower = TopicFollower(
            self.settings.kafka_client_options(), self.settings.topics.predictions, from_beginning=False,
            max_records=self.max_batch_size, reconnect=RECONNECT, positioned=self.ready, fetch_max_wait_ms=100,
            metadata_max_age_ms=10_000,  # notices the topic (or new partitions) within seconds when created later
        )
        async with aclosing(follower.batches(stop)) as batches:
            async for messages in batches:
                for message in messages:
                    await self._handle(message, handle)

    async def _handle(self, message, handle: Handler) -> None:
        self.received += 1
        try:
            prediction = PredictionMessage.model_validate_json(message.value or b"")
            _require_finite(prediction)
        except (ValidationError, ValueError) as exc:
            self.bad_messages += 1
            if worth_logging(self.bad_messages):
                log.warning("skipped a record that is not a prediction (%s[%d]@%d, %d skipped so far): %s",
                            message.topic, message.partition, message.offset, self.bad_messages, str(exc)[:300])
            return
        self.last_prediction_at = time.time()
        try:
            await handle(prediction)
        except Exception:  # noqa: BLE001 - one prediction's failure must not stop the live view
            self.handler_failures += 1
            if worth_logging(self.handler_failures):
                log.exception("publishing the prediction %s failed (%d failures so far)", prediction.message_id,
                              self.handler_failures)


def _require_finite(prediction: PredictionMessage) -> None:
    """The schema admits NaN and infinity (JSON's NaN literal); a process value must be a number."""
    numbers = [*prediction.predictions.values()]
    numbers += [bound for interval in (prediction.intervals or {}).values() for bound in (interval.low, interval.high)]
    if not all(math.isfinite(number) for number in numbers):
        raise ValueError(f"prediction {prediction.message_id} holds a value that is not a finite number")
