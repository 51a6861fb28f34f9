"""Real-process harness for stream tests: worker subprocesses, producing and collecting messages."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

import nirstream.devtools.worker_process
from nirstream.core.settings import TopicNames


def unique_topics() -> TopicNames:
    """Fresh topic names per test, so tests never see each other's messages."""
    tag = uuid.uuid4().hex[:8]
    return TopicNames(**{name: f"t{tag}.{default}" for name, default in TopicNames().model_dump().items()})


@dataclass
class WorkerProcess(nirstream.devtools.worker_process.WorkerProcess):
    """A worker in its own consumer group unless the test names one."""

    group_id: str | None = field(default_factory=lambda: f"g{uuid.uuid4().hex[:8]}")

    def wait_for_log(self, text: str, timeout: float = 120.0) -> None:
        """Wait until the worker's log contains ``text`` (an event it logs); fail with its log tail after ``timeout``."""
        deadline = time.monotonic() + timeout
        while text not in self.log_path.read_text(errors="replace"):
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not in the worker's log within {timeout:.0f} s; log:\n{self.log_tail()}")
            time.sleep(0.1)  # polling the log, not a synchronisation sleep


async def produce(bootstrap: str, topic: str, messages: list[tuple[bytes | None, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_request_size=8 << 20)
    await producer.start()
    try:
        for key, value in messages:
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


async def collect(bootstrap: str, topic: str, expected: int, timeout: float = 60.0, settle: float = 0.0) -> list:
    """Read ``topic`` from the start until ``expected`` messages arrived (or timeout).

    ``settle`` > 0 keeps reading that long after reaching the count, to catch extras.
    """
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    received = []
    try:
        deadline = time.monotonic() + timeout
        settle_until = None
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            received.extend(m for messages in batch.values() for m in messages)
            if len(received) >= expected:
                settle_until = settle_until or time.monotonic() + settle
                if time.monotonic() >= settle_until:
                    break
    finally:
        await consumer.stop()
    return received


def decoded(messages) -> list[dict]:
    return [orjson.loads(m.value) for m in messages]


def run(coro):
    return asyncio.run(coro)
