"""``nirstream demo``: broker, model, worker and two simulated analyzers in one command.

Runs live (a table per analyzer, Ctrl-C stops) or headless for ``--duration`` seconds, then
prints a summary. Every process it starts is stopped on the way out.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import time
import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer

from nirstream.core.datasets.tablets import tablets_path
from nirstream.core.registry import ModelRegistry
from stream.broker import EmbeddedBroker, free_port
from stream.simulate import Analyzer, open_source, replay, rmsep

log = logging.getLogger(__name__)


@dataclass
class AnalyzerView:
    predictions: int = 0
    last_value: float = float("nan")
    last_flag: str = ""
    flagged: int = 0
    errors: list[float] = field(default_factory=list)
    versions: set[str] = field(default_factory=set)


def ensure_model(registry: ModelRegistry, use_tablets: bool) -> str:
    """Train a quick model when the registry has no champion; return the champion version."""
    if registry.champion() is not None:
        return registry.champion()
    from trainer.pipeline import TrainSettings, run_training

    protocol = "cross-instrument" if use_tablets else "tecator"
    print(f"registry {registry.base} is empty: training a quick {protocol} model (about a minute)...", flush=True)
    summary = run_training(TrainSettings(protocol=protocol, quick=True, pls=False, registry=registry.base), verbose=0)
    print(f"trained version {summary['version']}; report {summary['report']}", flush=True)
    return summary["version"]


def start_worker(bootstrap: str, registry: Path, web_port: int, log_path: Path) -> subprocess.Popen:
    env = dict(os.environ, NIRSTREAM_BOOTSTRAP_SERVERS=bootstrap, NIRSTREAM_REGISTRY=str(registry),
               NIRSTREAM_WEB_PORT=str(web_port), TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.Popen([sys.executable, "-m", "nirstream", "worker", "--loglevel", "warning"],
                            env=env, stdout=log_path.open("ab"), stderr=subprocess.STDOUT)


def wait_ready(worker: subprocess.Popen, web_port: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise RuntimeError(f"worker exited with code {worker.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/ready", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)  # readiness polling interval
    raise TimeoutError("worker not ready in time")


def render(views: dict[str, AnalyzerView], unit: str, elapsed: float):
    from rich.table import Table

    table = Table(title=f"nirstream demo — {elapsed:5.1f} s  (Ctrl-C stops)")
    for column in ("analyzer", "predictions", f"last [{unit}]", "flag", "flagged", f"RMSEP vs ref [{unit}]", "model"):
        table.add_column(column)
    for analyzer, view in sorted(views.items()):
        table.add_row(analyzer, str(view.predictions), f"{view.last_value:.2f}", view.last_flag, str(view.flagged),
                      f"{rmsep(view.errors):.2f}", ",".join(sorted(view.versions)))
    return table


async def follow_predictions(bootstrap: str, topic: str, analyzers: dict[str, Analyzer], views: dict[str, AnalyzerView],
                             stop: asyncio.Event) -> None:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=200)
            for message in (m for messages in batch.values() for m in messages):
                p = orjson.loads(message.value)
                view = views[p["analyzer_id"]]
                (target, value), = p["predictions"].items()
                view.predictions += 1
                view.last_value, view.last_flag = value, p["outlier"]["flag"]
                view.flagged += p["outlier"]["flag"] != "ok"
                view.versions.add(p["model_version"])
                view.errors.append(value - analyzers[p["analyzer_id"]].reference(p["sequence"], target))
    finally:
        await consumer.stop()


async def run_demo(port: int, registry_path: Path, duration: float | None, rate: float, live: bool) -> dict:
    registry = ModelRegistry(registry_path)
    use_tablets = tablets_path().exists()
    if not use_tablets:
        print("tablet data not found: the demo uses the shipped tecator set instead", flush=True)
    ensure_model(registry, use_tablets)
    target = registry.load().metadata.target
    unit = registry.load().metadata.unit
    sources = {"line-1": "tablets1:test", "line-2": "tablets2:test"} if use_tablets else {"line-1": "tecator:test", "line-2": "tecator:monitor"}
    if target != ("assay" if use_tablets else "fat"):
        raise ValueError(f"the champion predicts {target!r}; the demo needs a model for its data set")
    analyzers = {name: Analyzer(name, open_source(spec)) for name, spec in sources.items()}
    views: dict[str, AnalyzerView] = defaultdict(AnalyzerView)
    logs = Path(os.environ.get("NIRSTREAM_LOG_DIR", "artifacts"))
    logs.mkdir(parents=True, exist_ok=True)
    web_port = free_port()
    with EmbeddedBroker.start(port) as broker:
        print(f"embedded broker on {broker.bootstrap_servers}", flush=True)
        worker = start_worker(broker.bootstrap_servers, registry.base, web_port, logs / "demo-worker.log")
        try:
            wait_ready(worker, web_port)
            print(f"worker ready: metrics at http://127.0.0.1:{web_port}/metrics, log {logs / 'demo-worker.log'}", flush=True)
            stop = asyncio.Event()
            follower = asyncio.create_task(follow_predictions(broker.bootstrap_servers, "nirstream.predictions", analyzers, views, stop))
            sender = asyncio.create_task(replay(broker.bootstrap_servers, "nirstream.spectra", list(analyzers.values()), rate, duration=duration or 10**9))
            started = time.monotonic()
            if live:
                from rich.live import Live

                with Live(render(views, unit, 0), refresh_per_second=4) as screen:
                    while not sender.done():
                        await asyncio.sleep(0.25)  # screen refresh interval
                        screen.update(render(views, unit, time.monotonic() - started))
            sent = await sender
            expected = sent
            deadline = time.monotonic() + 30
            while sum(v.predictions for v in views.values()) < expected and time.monotonic() < deadline:
                await asyncio.sleep(0.1)  # let the last predictions arrive
            stop.set()
            await follower
        finally:
            worker.terminate()
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
    summary = {"sent": sent, "predictions": sum(v.predictions for v in views.values()),
               "analyzers": {a: {"predictions": v.predictions, "rmsep": rmsep(v.errors), "flagged": v.flagged,
                                 "versions": sorted(v.versions)} for a, v in views.items()}}
    from rich.console import Console

    Console().print(render(views, unit, time.monotonic() - started))
    print(f"sent {summary['sent']} spectra, received {summary['predictions']} predictions", flush=True)
    return summary
