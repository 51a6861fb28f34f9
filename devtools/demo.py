"""``nirstream demo``: broker, model, worker, the trainer service, two simulated analyzers, the lab loop and a
hot swap.

``line-1`` replays test spectra unperturbed; ``line-2`` replays them with a growing absorption
band (a drift EMSC cannot remove) and a few faults. Lab values follow after a delay. The trainer
service (``nirstream trainer``, gate in automatic mode) archives the lab-labelled pairs; once it
holds enough, it retrains, gates the candidate on the newest pairs and promotes it, and the worker
swaps to it.
Runs live (the watch view, Ctrl-C stops) or headless for ``--duration`` seconds; either way
every process it started is stopped, and a JSON summary can be written.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nirstream.devtools.embedded_broker import EmbeddedBroker
from nirstream.devtools.simulate import SATURATION_CEILING, Analyzer, ProcessEffects, open_source, replay
from nirstream.devtools.topic_view import WatchState, follow, render
from nirstream.devtools.trainer_process import TrainerProcess
from nirstream.devtools.training_process import TrainingProcess, epoch_progress
from nirstream.devtools.worker_process import WorkerProcess
from nirstream.core.datasets.tablets import tablets_path
from nirstream.core.chemometrics.figures_of_merit import rmse
from nirstream.core.artifacts.registry import ModelRegistry
from nirstream.core.settings import TopicNames
from nirstream.trainer.champion import promote_and_announce

log = logging.getLogger(__name__)


async def train_first_model(registry: ModelRegistry, protocol: str, logs: Path) -> None:
    """A quick model in a child process (Ctrl-C stops it at once), with a one-line status while it trains."""
    from rich.console import Console

    training = TrainingProcess(registry.base, protocol, logs / "demo-first-model.log").start()
    started = time.monotonic()
    try:
        with Console().status(f"registry {registry.base} has no model: {training.status()}") as status:
            while not training.finished:
                await asyncio.sleep(0.5)  # refresh of the status line
                status.update(f"registry {registry.base} has no model: {training.status()} "
                              f"({time.monotonic() - started:.0f} s)")
    finally:
        training.stop()
    if training.returncode != 0 or registry.champion() is None:
        raise DemoIncomplete(f"training the first model failed (exit {training.returncode}):\n{training.log_tail()}")
    print(f"trained version {registry.champion()} in {time.monotonic() - started:.0f} s (log {training.log_path})", flush=True)


def scrape(worker: WorkerProcess) -> dict[str, dict]:
    """The monitoring metrics the demo reports: bias, RMSEP, outlier fraction per analyzer, model version.

    Empty while the worker's endpoint does not answer (it is stopping: Ctrl-C reaches the whole process group,
    and the worker may close its port before the demo has handled its own SIGINT)."""
    wanted = {"nirstream_rolling_bias", "nirstream_rolling_rmsep", "nirstream_outlier_fraction", "nirstream_model_version"}
    found: dict[str, dict] = defaultdict(dict)
    try:
        samples = worker.samples(wanted)
    except OSError:
        return {}
    for sample in samples:
        found[sample.name][sample.labels.get("analyzer", "")] = sample.value
    return dict(found)


@contextlib.contextmanager
def logs_to_file(path: Path):
    """The console shows the demo's view only: Python logging and everything written to stderr (TensorFlow's
    and absl's start-up lines, library warnings) go to ``path`` until the demo ends."""
    path.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    saved_handlers, root.handlers = root.handlers, [handler]
    sys.stderr.flush()
    saved_stderr = os.dup(2)
    with path.open("ab") as log_file:
        os.dup2(log_file.fileno(), 2)
    # Python's own stderr may be another descriptor than 2 (core.framework_output keeps the console there)
    saved_python_stderr, sys.stderr = sys.stderr, path.open("a", buffering=1)
    try:
        yield path
    finally:
        sys.stderr.close()
        sys.stderr = saved_python_stderr
        sys.stderr.flush()
        os.dup2(saved_stderr, 2)
        os.close(saved_stderr)
        root.handlers = saved_handlers
        handler.close()


class DemoIncomplete(RuntimeError):
    """The headless demo did not see the whole sequence (retrain, swap, swapped predictions) in time."""


# The time-forward gate holds out the newest pairs (GatePolicy.holdout_pairs' default): the demo asks the
# service for --retrain-after pairs to train on plus these, so the retrained model learns from --retrain-after.
HOLDOUT_PAIRS = 20


def start_trainer_service(bootstrap: str, registry: ModelRegistry, protocol: str, retrain_after: int, logs: Path) -> TrainerProcess:
    """``nirstream trainer`` as the plant runs it, with settings that make its loop act within the demo: the same
    quick training as the first model, the gate in automatic mode (promotion is the service's, with the gate's
    figures in the audit trail), a retrain once the store holds ``retrain_after`` pairs beyond the held-out ones.
    The bias trigger is off so that the demo's steps come in the same order every run. A fresh store per run."""
    run_dir = Path(tempfile.mkdtemp(prefix="demo-trainer-", dir=logs))
    settings = {
        "NIRSTREAM_GATE__MODE": "automatic",
        "NIRSTREAM_GATE__HOLDOUT_PAIRS": str(HOLDOUT_PAIRS),
        "NIRSTREAM_RETRAIN__MIN_NEW_PAIRS": str(retrain_after + HOLDOUT_PAIRS),
        "NIRSTREAM_RETRAIN__TRAINING_WINDOWS": '["all"]',  # the demo shows the swap: no window choice to wait for
        "NIRSTREAM_RETRAIN__BIAS_K": "1e9",
        "NIRSTREAM_CHECK_SECONDS": "1",
        # calibration on validation: the demo shows the swap, not interval coverage, and must stay quick
        "NIRSTREAM_BASE_TRAINING": json.dumps({"protocol": protocol, "quick": True, "pls": False,
                                               "calibration": "validation", "seed": 1}),
    }
    return TrainerProcess(bootstrap, registry.base, None, logs / "demo-trainer.log", extra_env=settings,
                          store=run_dir / "pairs.sqlite", workdir=run_dir / "retrains").start()


@dataclass
class SwapProgress:
    """Where the trainer service's retrain and the hot swap stand; each step is an observed event."""

    trainer: TrainerProcess
    min_pairs: int
    figures: dict = field(default_factory=dict)  # the service's last /metrics reading
    version: str | None = None
    gate: str = ""
    labelled_used: int | None = None
    started_at: float | None = None  # seconds since the stream started
    at: float | None = None  # when the new champion was announced
    observed_at: float | None = None  # when every analyzer's predictions carried it

    def summary(self) -> dict:
        return {"version": self.version, "gate": self.gate, "labelled_used": self.labelled_used,
                "retrain_started_at": self.started_at, "at": self.at, "observed_at": self.observed_at}


def _finish_retrain(progress: SwapProgress, registry: ModelRegistry, bootstrap: str, models_topic: str,
                    elapsed: float) -> None:
    """The service's retrain has ended: read its outcome. Promoted: the service did it. Rejected by the gate: the
    operator promotes the candidate anyway so that the demo shows the swap (recorded as such in the audit trail)."""
    outcome = progress.trainer.last_outcome()
    if progress.figures.get("failed") or outcome is None or outcome["status"] not in ("promoted", "rejected"):
        log_file = progress.trainer.last_retrain_log()
        tail = "\n".join(log_file.read_text(errors="replace").splitlines()[-30:]) if log_file else ""
        raise DemoIncomplete(f"the trainer service's retrain did not decide ({outcome}); its log {log_file}:\n{tail}")
    version = str(outcome["version"])
    progress.labelled_used, progress.gate = outcome["training_pairs"], outcome["status"]
    if outcome["status"] == "rejected":
        reason = f"demo: operator promotes the candidate the time-forward gate rejected ({outcome['reason']})"
        promote_and_announce(registry, version, reason, bootstrap_servers=bootstrap, models_topic=models_topic)
    progress.version, progress.at = version, elapsed


async def run_demo(port: int, registry_path: Path, duration: float | None, rate: float, retrain_after: int,
                   reference_fraction: float, drift: float, summary_path: Path | None, timeout: float = 900.0) -> dict:
    """Run the demo. Headless (``duration`` given): stream at least ``duration`` s, then until every analyzer's
    predictions come from the retrained model; ``DemoIncomplete`` if that takes longer than ``timeout`` s."""
    registry = ModelRegistry(registry_path)
    use_tablets = tablets_path().exists()
    if not use_tablets:
        print("tablet data not found: the demo uses the shipped tecator set instead", flush=True)
    protocol, target, source = ("cross-instrument", "assay", "tablets1:test") if use_tablets else ("tecator", "fat", "tecator:test")
    logs = Path(os.environ.get("NIRSTREAM_LOG_DIR", "artifacts"))
    logs.mkdir(parents=True, exist_ok=True)
    if registry.champion() is None:
        await train_first_model(registry, protocol, logs)
    first_version = registry.champion()
    if registry.metadata().targets != [target]:
        raise ValueError(f"the champion predicts {registry.metadata().targets}; the demo needs a {target!r} model "
                         f"(use an empty --registry)")
    dataset = open_source(source)
    analyzers = [
        Analyzer("line-1", dataset, seed=1, target=target),
        Analyzer("line-2", dataset, effects=ProcessEffects(drift=drift, faults=0.04, drift_ceiling=0.9 * SATURATION_CEILING),
                 start_row=dataset.n_samples // 2, seed=2,
                 target=target),
    ]
    topics = TopicNames()
    state, stop_following, stop_sending = WatchState(), asyncio.Event(), asyncio.Event()
    timeline: list[dict] = []
    progress = None
    with EmbeddedBroker.start(port) as broker:
        bootstrap = broker.bootstrap_servers
        worker = WorkerProcess(bootstrap, registry.base, None, logs / "demo-worker.log", loglevel="warning", extra_env={
            "NIRSTREAM_SATURATION_LIMIT": str(SATURATION_CEILING * 0.99), "NIRSTREAM_RMSEP_WINDOW": "50",
            "NIRSTREAM_ALLOW_UNSIGNED": "true"}).start()  # a trial: its models are unsigned (logged by the worker)
        pids = {"broker": broker.process.pid, "worker": worker.pid}
        sender = follower = trainer = None
        try:
            worker.wait_ready(timeout=120)  # the worker has created the topics the trainer service reads
            trainer = start_trainer_service(bootstrap, registry, protocol, retrain_after, logs)
            pids["trainer"] = trainer.pid
            progress = SwapProgress(trainer, retrain_after + HOLDOUT_PAIRS)
            trainer.wait_ready(timeout=120)
            print(f"embedded broker {bootstrap}; worker metrics http://127.0.0.1:{worker.web_port}/metrics "
                  f"(health /health, /ready); trainer service http://127.0.0.1:{trainer.web_port}/metrics; "
                  f"logs in {logs}/", flush=True)
            follower = asyncio.create_task(follow(bootstrap, topics.model_dump(), state, stop_following))
            sender = asyncio.create_task(replay(
                bootstrap, topics.spectra, analyzers, rate, stop=stop_sending, reference_topic=topics.reference,
                reference_fraction=reference_fraction, reference_delay=2.0))
            started = time.monotonic()
            title = lambda: (f"nirstream demo — {time.monotonic() - started:5.1f} s — {progress_line(progress)}"
                             " — Ctrl-C stops")
            live = None
            if duration is None:
                from rich.live import Live

                live = Live(render(state, title()), refresh_per_second=4)
                live.start()
            try:
                while not sender.done():
                    await asyncio.sleep(1.0)  # sampling interval of the metrics timeline and of the demo's steps
                    elapsed = time.monotonic() - started
                    timeline.append({"t": round(elapsed, 1), **await asyncio.to_thread(scrape, worker)})
                    await asyncio.to_thread(_advance, progress, state, registry, bootstrap, topics, elapsed,
                                            [a.analyzer_id for a in analyzers])
                    if live:
                        live.update(render(state, title()))
                    if duration is not None and progress.observed_at is not None and elapsed >= duration:
                        stop_sending.set()
                    elif duration is not None and worker.process.poll() is not None:
                        raise DemoIncomplete(f"the worker exited with code {worker.process.returncode}; its log:\n"
                                             f"{worker.log_tail()}")
                    elif duration is not None and trainer.process.poll() is not None:
                        raise DemoIncomplete(f"the trainer service exited with code {trainer.process.returncode}; its "
                                             f"log:\n{trainer.log_tail()}")
                    elif duration is not None and elapsed > timeout:
                        raise DemoIncomplete(
                            f"after {elapsed:.0f} s: {progress_line(progress)}; "
                            f"versions seen {[(a, v.versions_seen) for a, v in state.analyzers.items()]}; logs in {logs}/")
            finally:
                if live:
                    live.stop()
            stats = await sender
            deadline = time.monotonic() + 120
            while len(state.predicted_ids) < sum(stats.valid.values()) and time.monotonic() < deadline:
                await asyncio.sleep(0.2)  # the last predictions are on their way
            timeline.append({"t": round(time.monotonic() - started, 1), **scrape(worker)})
        finally:
            # Ctrl-C lands here too: everything must be gone within ~3 s, so each step gets a short leash.
            log.info("demo stopping")
            stop_following.set()
            stop_sending.set()
            clients = [task for task in (sender, follower) if task is not None]
            _, unfinished = await asyncio.wait(clients, timeout=0.5) if clients else (set(), set())
            for task in unfinished:
                task.cancel()  # e.g. a producer still flushing to a broker that is going away
            if trainer:
                trainer.stop(timeout=0.5)  # its retrain child dies with it (PR_SET_PDEATHSIG); the store is SQLite
            worker.stop(timeout=0.5)  # offsets are committed after each batch: a kill loses nothing
            broker.stop(timeout=0.2)  # the demo's broker keeps everything in memory: nothing to flush
            log.info("demo stopped")
    summary = {
        "sent": stats.sent, "valid": dict(stats.valid), "faults": dict(stats.faults), "references": stats.references,
        "predictions": {a: v.predictions for a, v in state.analyzers.items()},
        "unique_predictions": len(state.predicted_ids),
        "dead_letters": dict(state.dead_letter_reasons),
        "versions": {a: v.versions_seen for a, v in state.analyzers.items()},
        "source": source, "target": target, "target_std": float(dataset.target(target).std()),
        "first_version": first_version, "swap": progress.summary(), "timeline": timeline, "pids": pids,
        "labelled": state.labelled,
        "online_rmsep": _online_rmsep(state),
    }
    from rich.console import Console

    Console().print(render(state, "nirstream demo — final"))
    print(f"sent {stats.sent} spectra ({sum(stats.valid.values())} valid, faults {dict(stats.faults)}), "
          f"{len(state.predicted_ids)} predictions, dead letters {dict(state.dead_letter_reasons)}; "
          f"hot swap to version {progress.version} retrained on {progress.labelled_used} lab-labelled spectra", flush=True)
    if summary_path:
        summary_path.write_text(json.dumps(summary, indent=2, default=str))
    return summary


def progress_line(progress: SwapProgress | None) -> str:
    """One line for the screen, from the trainer service's /metrics."""
    if progress is None:
        return "starting the trainer service"
    if progress.version:
        return (f"serving version {progress.version}, retrained on {progress.labelled_used} lab-labelled spectra "
                f"(gate: {progress.gate})")
    figures = progress.figures
    if progress.started_at is not None:
        log_file = progress.trainer.last_retrain_log()
        epochs = epoch_progress(log_file.read_bytes()) if log_file and log_file.exists() else ""
        return f"trainer service retraining ({int(figures.get('stored', 0))} lab pairs stored{epochs})"
    return f"lab pairs in the trainer's store {int(figures.get('stored', 0))}/{progress.min_pairs} before the retrain"


def _advance(progress: SwapProgress, state: WatchState, registry: ModelRegistry, bootstrap: str, topics: TopicNames,
             elapsed: float, analyzers: list[str]) -> None:
    """One step of the demo's sequence, each triggered by what has been observed, never by the clock."""
    progress.figures = progress.trainer.figures() or progress.figures
    if progress.started_at is None and progress.figures.get("started"):
        progress.started_at = elapsed
    elif progress.started_at is not None and progress.version is None and (
            progress.figures.get("succeeded") or progress.figures.get("failed")):
        _finish_retrain(progress, registry, bootstrap, topics.models, elapsed)
    elif progress.version is not None and progress.observed_at is None and all(
            state.analyzers.get(a) and state.analyzers[a].model_version == progress.version for a in analyzers):
        progress.observed_at = elapsed


def _online_rmsep(state: WatchState) -> dict:
    errors: dict = defaultdict(lambda: defaultdict(list))
    for pair in state.labelled:
        errors[pair["analyzer_id"]][pair["model_version"]].extend(pair["error"].values())  # the demo's model has one target
    return {a: {v: {"rmsep": rmse(e, 0.0), "bias": float(np.mean(e)), "n": len(e)}
                for v, e in versions.items()} for a, versions in errors.items()}
