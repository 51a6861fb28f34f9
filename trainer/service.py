"""``nirstream trainer``: the learning loop as a long-running service.

Two jobs that never wait for each other:

* **archive**: read ``nirstream.labelled`` with the trainer's own consumer group, store each batch of pairs in
  the plant store (one transaction), then commit the batch's offsets. A crash replays at most the uncommitted
  batch, and the store keeps one row per message id, so no pair is lost or stored twice whatever is killed.
* **retrain**: every ``check_seconds`` ask the retraining policy (``retrain_policy.decide``); when it says so,
  run one retrain (``retrain_job``) in a child process with a time limit. The child fits, gates and promotes or
  proposes or rejects; the champion serves on whatever happens to the child.

``/health`` (alive), ``/ready`` (the store is open and the consumer has joined), ``/metrics``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from nirstream.core.artifacts.registry import ModelRegistry
from nirstream.core.artifacts.signing import configured_signer
from nirstream.core.child_processes import stop_with_parent, terminate
from nirstream.core.messages.labelled import LabelledPair
from nirstream.kafka.backoff import Backoff, pause_unless_stopped
from nirstream.core.serving.predictor import Predictor
from nirstream.core.web_endpoints import start_endpoints
from nirstream.trainer.bias_correction import fit_bias_correction
from nirstream.trainer.champion import announce_change, roll_back_and_announce
from nirstream.trainer.plant_store import PlantStore, prediction_errors
from nirstream.trainer.promotion_guard import judge_promotion
from nirstream.trainer.retrain_policy import decide
from nirstream.trainer.service_metrics import TrainerMetrics
from nirstream.trainer.service_settings import TrainerServiceSettings

log = logging.getLogger(__name__)


class PairArchiver:
    """The labelled topic into the plant store, offsets committed only after the store committed."""

    def __init__(self, settings: TrainerServiceSettings, store: PlantStore, metrics: TrainerMetrics):
        self.settings, self.store, self.metrics = settings, store, metrics
        self.ready = False

    async def run(self, stop: asyncio.Event) -> None:
        pauses = Backoff(1.0, 30.0).pauses()
        while not stop.is_set():
            consumer = AIOKafkaConsumer(self.settings.topics.labelled, **self.settings.kafka_client_options(),
                                        group_id=self.settings.group_id, enable_auto_commit=False,
                                        auto_offset_reset="earliest")
            try:
                await consumer.start()
                self.ready = True
                pauses = Backoff(1.0, 30.0).pauses()
                while not stop.is_set():
                    batch = await consumer.getmany(timeout_ms=500)
                    records = [m for messages in batch.values() for m in messages]
                    if records:
                        self.archive([m.value for m in records])
                        await consumer.commit()  # the positions getmany returned: all of this batch, now stored
            except KafkaError as exc:
                self.ready = False
                log.warning("labelled topic unreachable (%s): retrying", exc)
                await pause_unless_stopped(stop, next(pauses))
            finally:
                self.ready = False
                with contextlib.suppress(Exception):
                    await consumer.stop()

    def archive(self, raw_messages: list[bytes]) -> None:
        pairs = []
        for raw in raw_messages:
            try:
                pairs.append(LabelledPair.model_validate_json(raw))
            except ValidationError:
                self.metrics.pairs_refused.labels("not_a_labelled_pair").inc()
        outcome = self.store.add(pairs)
        for message_id, why in outcome.refused:
            log.warning("labelled pair %s kept out of the store: %s", message_id, why)
            self.metrics.pairs_refused.labels("invalid_spectrum").inc()
        self.metrics.pairs_archived.inc(outcome.stored)
        self.metrics.pairs_repeated.inc(outcome.repeats)
        self.metrics.pairs_stored.set(self.store.count())
        if outcome.stored:
            log.info("archived %d labelled pairs (%d repeats)", outcome.stored, outcome.repeats)


class RetrainScheduler:
    """Asks the policy, runs one retrain child at a time, kills it at its time limit, reads its outcome."""

    def __init__(self, settings: TrainerServiceSettings, store: PlantStore, metrics: TrainerMetrics,
                 config_file: Path | None, overrides: dict):
        self.settings, self.store, self.metrics = settings, store, metrics
        self.config_file, self.overrides = config_file, overrides
        self.registry = ModelRegistry(settings.registry, signer=configured_signer(settings.signing_key_file))  # SBC transfers
        self.child: subprocess.Popen | None = None
        self.child_started: float | None = None
        self.last_start: float | None = None
        self.run_dir: Path | None = None
        self.last_decision = ""
        self.rejected_in_a_row = 0
        self.guarded: set[str] = set()  # champions the guard has judged (or need none)
        self.corrected_at: dict[tuple[str, str], int] = {}  # (champion, analyzer) -> its pairs at the last SBC try
        self._champion: Predictor | None = None

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                await asyncio.to_thread(self.step)  # a model load or a correction's fit must not stall /metrics
                await pause_unless_stopped(stop, self.settings.check_seconds)
        finally:
            terminate(self.child, 5.0)
            self.store.close()

    def step(self) -> None:
        """One look: finish a retrain that ended (or ran out of time), else start one if the policy says so."""
        if self.child is not None:
            if self.child.poll() is None and time.monotonic() - self.child_started < self.settings.retrain.timeout_minutes * 60:
                return
            self._finish()
        champion = self.registry.champion()
        if champion is None:
            return
        if self.settings.guard.enabled and champion not in self.guarded:
            self._guard(champion)
            champion = self.registry.champion()
        decision = decide(self.settings.retrain, new_pairs=self._new_pairs(champion),
                          recent_errors=self._recent_errors(champion),
                          minutes_since_last_start=None if self.last_start is None else (time.monotonic() - self.last_start) / 60,
                          running=False)
        if decision.reason != self.last_decision:
            log.info("retraining policy: %s", decision.reason)
            self.last_decision = decision.reason
        if decision.retrain:
            self._start(decision.reason)
        elif decision.biased and self.settings.retrain.bias_correction:
            for analyzer in sorted({test.analyzer for test in decision.biased}):
                self._correct_bias(champion, analyzer)

    def _correct_bias(self, champion: str, analyzer: str) -> None:
        """Try a slope/bias correction for ``analyzer`` once per ``bias_min_pairs`` new pairs of it."""
        pairs = self.store.count(analyzer=analyzer)
        tried = self.corrected_at.get((champion, analyzer))
        if tried is not None and pairs - tried < self.settings.retrain.bias_min_pairs:
            return
        self.corrected_at[(champion, analyzer)] = pairs
        if self._champion is None or self._champion.version != champion:
            self._champion = Predictor(self.registry.load(champion))
        correction = fit_bias_correction(self.store, self._champion, analyzer, self.settings.retrain,
                                         self.settings.gate, by="nirstream trainer")
        if correction.transfer is None:
            self.metrics.bias_corrections.labels("not_helpful").inc()
            log.info("bias correction: %s", correction.reason)
        elif self.settings.gate.mode != "automatic":
            self.metrics.bias_corrections.labels("proposed").inc()
            log.warning("bias correction: %s (gate.mode %s: not published; `nirstream transfer` publishes one by hand)",
                        correction.reason, self.settings.gate.mode)
        else:
            number = self.registry.publish_transfer(correction.transfer, correction.reason, by="nirstream trainer")
            announce_change(self.registry, champion, f"{analyzer} slope/bias correction #{number}",
                            self.settings.bootstrap_servers, self.settings.topics.models, event_type="transfer_published")
            self.metrics.bias_corrections.labels("published").inc()
            log.warning("bias correction #%s published: %s", number, correction.reason)

    def _guard(self, champion: str) -> None:
        """Judge a newly promoted champion once it has its first lab pairs; roll back if it is worse."""
        changes = [e for e in self.registry.history() if e.version == champion and e.event in ("promoted", "rolled_back")]
        previous = changes[-1].details.get("previous") if changes and changes[-1].event == "promoted" else None
        if not previous:  # the first champion, or one a rollback returned to: nothing to compare with
            self.guarded.add(champion)
            return
        verdict = judge_promotion(self.store, champion, str(previous), self.settings.guard.pairs,
                                  self.settings.gate.confidence)
        if not verdict.ready:
            return
        self.guarded.add(champion)
        if not verdict.roll_back:
            log.info("promotion guard: %s", verdict.reason)
            return
        back_to = roll_back_and_announce(self.registry, f"promotion guard: {verdict.reason}", by="nirstream trainer",
                                         bootstrap_servers=self.settings.bootstrap_servers,
                                         models_topic=self.settings.topics.models,
                                         client_options=self.settings.kafka_producer_options())
        self.guarded.add(back_to)
        self.metrics.rollbacks.inc()
        log.error("promotion guard rolled back to version %s: %s", back_to, verdict.reason)

    def _new_pairs(self, champion: str) -> int:
        """Pairs archived after the champion was published: lab values it has not seen."""
        published = [e.at for e in self.registry.history() if e.event == "published" and e.version == champion]
        return self.store.count(archived_after=datetime.fromisoformat(published[-1])) if published else self.store.count()

    def _recent_errors(self, champion: str) -> dict[tuple[str, str], np.ndarray]:
        """Each analyzer's latest errors of the champion, per target (spectra are not needed: not read)."""
        return prediction_errors(self.store.pairs(model_version=champion, spectra=False,
                                                  newest_per_analyzer=self.settings.retrain.bias_window),
                                 per_analyzer=True)

    def _start(self, why: str) -> None:
        self.run_dir = self.settings.workdir / time.strftime("%Y%m%d-%H%M%S")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        # the retrain trains on the pairs the decision saw, not on those archived while it starts
        decided_at = datetime.now(UTC).isoformat()
        command = [sys.executable, "-m", "nirstream.trainer.retrain_job", "--workdir", str(self.run_dir),
                   "--output", str(self.run_dir / "outcome.json"), "--overrides", json.dumps(self.overrides, default=str),
                   "--archived-until", decided_at]
        if self.config_file:
            command += ["--config", str(self.config_file)]
        log.info("retrain started (%s); log %s", why, self.run_dir / "retrain.log")
        with (self.run_dir / "retrain.log").open("ab") as output:
            self.child = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                          preexec_fn=stop_with_parent())  # noqa: PLW1509 - only a prctl call
        self.child_started = self.last_start = time.monotonic()
        self.metrics.retrains.labels("started").inc()
        self.metrics.retrain_running.set(1)

    def _finish(self) -> None:
        timed_out = self.child.poll() is None
        code = terminate(self.child, 5.0)
        self.metrics.retrain_running.set(0)
        self.metrics.last_retrain_seconds.set(time.monotonic() - self.child_started)
        outcome_file = self.run_dir / "outcome.json"
        if timed_out or code != 0 or not outcome_file.exists():
            why = f"killed after {self.settings.retrain.timeout_minutes:g} min" if timed_out else f"exit {code}"
            log.error("retrain failed (%s); the champion keeps serving; log %s", why, self.run_dir / "retrain.log")
            self.metrics.retrains.labels("failed").inc()
        else:
            outcome = json.loads(outcome_file.read_text())
            self.metrics.retrains.labels("succeeded").inc()
            log.info("retrain %s: version %s: %s", outcome["status"], outcome.get("version"), outcome["reason"])
            if outcome["status"] in ("promoted", "proposed", "rejected"):
                self.metrics.decisions.labels(outcome["status"]).inc()
                self.rejected_in_a_row = self.rejected_in_a_row + 1 if outcome["status"] == "rejected" else 0
                self.metrics.rejected_in_a_row.set(self.rejected_in_a_row)
                for target, verdict in outcome["verdicts"].items():
                    self.metrics.gate_rmsep.labels("candidate", target).set(verdict["candidate_rmsep"])
                    self.metrics.gate_rmsep.labels("champion", target).set(verdict["champion_rmsep"])
        self.child = None


class TrainerService:
    def __init__(self, settings: TrainerServiceSettings, config_file: Path | None = None, overrides: dict | None = None):
        self.settings = settings
        self.metrics = TrainerMetrics()
        self.store = PlantStore(settings.store)
        self.metrics.pairs_stored.set(self.store.count())
        self.archiver = PairArchiver(settings, self.store, self.metrics)
        # its own connection: the scheduler runs in a worker thread (loading a model, fitting a correction) while
        # the archiver writes; SQLite's write-ahead log lets one writer and readers work at once
        self.scheduler = RetrainScheduler(settings, PlantStore(settings.store), self.metrics, config_file, overrides or {})

    def readiness(self) -> dict:
        return {"ready": self.archiver.ready, "pairs_stored": self.store.count(),
                "retrain_running": self.scheduler.child is not None}

    async def run(self, stop: asyncio.Event) -> None:
        runner = await start_endpoints(self.settings.web_host, self.settings.web_port, self.metrics.registry,
                                       self.readiness)
        log.info("trainer service: store %s (%d pairs), /metrics on %s:%d", self.settings.store, self.store.count(),
                 self.settings.web_host, self.settings.web_port)
        try:
            await asyncio.gather(self.archiver.run(stop), self.scheduler.run(stop))
        finally:
            await runner.cleanup()
            self.store.close()
