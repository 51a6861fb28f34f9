"""Real-process harness for stream tests: worker subprocesses, producing and collecting messages."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from stream.broker import free_port
from stream.settings import TopicNames

REPO_ROOT = Path(__file__).resolve().parent.parent


def unique_topics() -> TopicNames:
    """Fresh topic names per test, so tests never see each other's messages."""
    tag = uuid.uuid4().hex[:8]
    return TopicNames(**{name: f"t{tag}.{default}" for name, default in TopicNames().model_dump().items()})


def worker_env(bootstrap: str, registry: Path, topics: TopicNames, group_id: str, web_port: int, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        NIRSTREAM_BOOTSTRAP_SERVERS=bootstrap,
        NIRSTREAM_REGISTRY=str(registry),
        NIRSTREAM_GROUP_ID=group_id,
        NIRSTREAM_WEB_PORT=str(web_port),
        TF_CPP_MIN_LOG_LEVEL="2",
        **{f"NIRSTREAM_TOPICS__{k.upper()}": v for k, v in topics.model_dump().items()},
    )
    env.update(extra)
    return env


@dataclass
class WorkerProcess:
    """``nirstream worker`` in a subprocess, as an operator would run it."""

    bootstrap: str
    registry: Path
    topics: TopicNames
    log_path: Path
    group_id: str = field(default_factory=lambda: f"g{uuid.uuid4().hex[:8]}")
    extra_env: dict[str, str] = field(default_factory=dict)
    web_port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    def start(self) -> WorkerProcess:
        env = worker_env(self.bootstrap, self.registry, self.topics, self.group_id, self.web_port, **self.extra_env)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "nirstream", "worker", "--loglevel", "info"],
            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT,
        )
        return self

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}{path}", timeout=2) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited with {self.process.returncode}; log:\n{self.log_tail()}")
            try:
                if self.get("/ready")[0] == 200:
                    return
            except OSError:
                pass  # web server not up yet
            time.sleep(0.1)  # polling interval for readiness, not a synchronisation sleep
        raise TimeoutError(f"worker not ready within {timeout} s; log:\n{self.log_tail()}")

    def metric(self, name: str, **labels: str) -> float:
        from prometheus_client.parser import text_string_to_metric_families

        body = self.get("/metrics")[1].decode()
        total = 0.0
        for family in text_string_to_metric_families(body):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    total += sample.value
        return total

    def stop(self, timeout: float = 30.0) -> int:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode if self.process else 0

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


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
