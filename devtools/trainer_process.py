"""``nirstream trainer`` (the learning loop) as a child process, driven like the worker: start, readiness, metrics,
stop (``WorkerProcess``); plus what the demo reads back: the service's figures and its last retrain's outcome."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from nirstream.devtools.worker_process import WorkerProcess


@dataclass
class TrainerProcess(WorkerProcess):
    """``extra_env`` carries the service's settings (``NIRSTREAM_GATE__MODE``, ``NIRSTREAM_BASE_TRAINING``, ...)."""

    store: Path | None = None  # the plant data store (SQLite file)
    workdir: Path | None = None  # the retrain children's logs and outcomes

    def command(self) -> list[str]:
        return ["trainer", "--store", str(self.store)]

    def start(self) -> TrainerProcess:
        self.extra_env = {**self.extra_env, "NIRSTREAM_WORKDIR": str(self.workdir)}
        super().start()
        return self

    def figures(self) -> dict[str, float]:
        """The service's counters by short name (``stored``, ``started``, ``succeeded``, ``failed``, ``running``,
        ``promoted``, ...); empty while its endpoint does not answer."""
        names = {"nirstream_trainer_pairs_stored": "stored", "nirstream_trainer_retrain_running": "running",
                 "nirstream_trainer_retrains_total": "outcome", "nirstream_trainer_gate_decisions_total": "decision"}
        try:
            samples = self.samples(set(names))
        except OSError:
            return {}
        found: dict[str, float] = {}
        for sample in samples:
            label = names[sample.name]
            found[sample.labels.get(label, label)] = sample.value
        return found

    def last_outcome(self) -> dict | None:
        """The outcome the last retrain child wrote (``retrain_job.RetrainOutcome`` as JSON), if any."""
        outcomes = sorted(self.workdir.glob("*/outcome.json"))  # one folder per retrain, named by its start time
        return json.loads(outcomes[-1].read_text()) if outcomes else None

    def last_retrain_log(self) -> Path | None:
        logs = sorted(self.workdir.glob("*/retrain.log"))
        return logs[-1] if logs else None
