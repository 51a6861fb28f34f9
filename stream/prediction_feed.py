"""Follows the predictions topic for a live view (``nirstream opcua``): from the end of each partition, in
batches, without a consumer group (nothing is committed: a restart starts at the end again).

A record that is not a valid ``PredictionMessage`` with finite numbers is skipped, counted and logged; nothing a
producer sends, and no failure of the handler, stops the loop.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from nirstream.core.messages.prediction import PredictionMessage
from nirstream.core.settings import SharedSettings
from nirstream.stream.log_sampling import worth_logging

log = logging.getLogger(__name__)

Handler = Callable[[PredictionMessage], Awaitable[object]]
MAX_BACKOFF_SECONDS = 30.0


class PredictionFeed:
    """Reads ``settings.topics.predictions`` from its latest offsets and hands each valid prediction to a handler."""

    def __init__(self, settings: SharedSettings, max_batch_size: int = 500):
        self.settings = settings
        self.max_batch_size = max_batch_size
        self.ready = asyncio.Event()  # set once every partition's starting offset is known: later records are seen
        self.received = 0
        self.bad_messages = 0
        self.handler_failures = 0

    async def run(self, handle: Handler, stop: asyncio.Event) -> None:
        """Until ``stop`` is set. The broker being away (at start or later) only delays: the values go stale meanwhile."""
        topic = self.settings.topics.predictions
        consumer = AIOKafkaConsumer(
            topic, **self.settings.kafka_client_options(), group_id=None, enable_auto_commit=False,
            auto_offset_reset="latest", fetch_max_wait_ms=100,
            metadata_max_age_ms=10_000,  # notices the topic (or new partitions) within seconds when created later
        )
        failures = 0
        while not stop.is_set():
            try:
                await consumer.start()
                break
            except (KafkaError, OSError) as exc:
                failures += 1
                log.warning("cannot reach Kafka at %s (%s); retrying", self.settings.bootstrap_servers, exc)
                await _wait(stop, min(MAX_BACKOFF_SECONDS, 0.5 * 2**failures))
        else:
            return
        log.info("following %s from its latest offsets", topic)
        failures = 0
        try:
            while not stop.is_set():
                try:
                    fetched = await consumer.getmany(timeout_ms=200, max_records=self.max_batch_size)
                    if not self.ready.is_set():
                        await self._resolve_start(consumer)
                    failures = 0
                except KafkaError as exc:  # e.g. authorisation: keep trying
                    failures += 1
                    log.warning("reading %s failed (%s); retrying", topic, exc)
                    await _wait(stop, min(MAX_BACKOFF_SECONDS, 0.5 * 2**failures))
                    continue
                for messages in fetched.values():
                    for message in messages:
                        await self._handle(message, handle)
        finally:
            await consumer.stop()

    async def _resolve_start(self, consumer: AIOKafkaConsumer) -> None:
        assigned = consumer.assignment()
        if not assigned:
            return  # the topic does not exist yet, or its metadata has not arrived
        for partition in assigned:
            await consumer.position(partition)  # resolves "latest" to an offset
        self.ready.set()
        log.info("reading %d partition(s) of %s", len(assigned), self.settings.topics.predictions)

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


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except asyncio.TimeoutError:
        pass
