"""One retrain of the learning loop, run by the trainer service in a child process it can kill:

1. the newest ``gate.holdout_pairs`` stored pairs (by lab time) are held out; the older ones join the base
   training data (``base_training``: what ``nirstream train`` would be given) as extra training spectra;
2. ``nirstream train``'s stages fit and publish a candidate without deciding about it (``promote=False``);
3. the time-forward gate (``time_forward_gate.judge``) compares candidate and champion on the held-out pairs,
   and on the base validation split, per target; the candidate passes only if it passes for every target;
4. a passing candidate is promoted (``gate.mode = "automatic"``) or proposed for approval (``"propose"``); a
   failing one is rejected. Every decision and its figures go to the registry's audit trail and the models topic.

The outcome is written as JSON for the service (``--output``). ``python -m nirstream.trainer.retrain_job``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from nirstream.core.artifacts.registry import ModelRegistry
from nirstream.core.serving.predictor import Predictor
from nirstream.trainer.champion import announce_change, promote_and_announce
from nirstream.trainer.plant_pairs import training_frame
from nirstream.trainer.plant_store import PlantStore, StoredPair
from nirstream.trainer.service_settings import TrainerServiceSettings
from nirstream.trainer.time_forward_gate import GateVerdict, judge
from nirstream.trainer.training_window import TrainingWindow, WindowChoice, choose_window

log = logging.getLogger(__name__)
ACTOR = "nirstream trainer"


@dataclass
class RetrainOutcome:
    """What the retrain did, for the service's metrics and log."""

    status: str  # promoted | proposed | rejected | skipped
    reason: str
    version: str | None = None
    champion: str | None = None
    training_pairs: int = 0
    training_window: str = "all"
    holdout_pairs: int = 0
    seconds: float = 0.0
    verdicts: dict[str, dict[str, Any]] = field(default_factory=dict)


def split_pairs(pairs: list[StoredPair], holdout: int) -> tuple[list[StoredPair], list[StoredPair]]:
    """Older pairs to train on, the newest ``holdout`` (lab time order) to judge on."""
    return pairs[:-holdout] if holdout else pairs, pairs[-holdout:] if holdout else []


def choose_training_pairs(training: list[StoredPair], base_protocol, settings: TrainerServiceSettings) -> WindowChoice:
    """The training window (all pairs, the newest N, or the newest N weighted) whose PLS model, fitted on the base
    data plus the older training pairs, predicts the newest training pairs best: time-forward, never on the gate's
    held-out pairs. Targets count in units of the base data's spread."""
    from nirstream.trainer.prequential import PrequentialSettings, fit_retrain_pls

    targets = base_protocol.targets
    X_base, Y_base = base_protocol.train.X, base_protocol.y(base_protocol.train)
    X_pairs = np.array([p.spectrum for p in training]).reshape(len(training), -1)
    Y_pairs = np.array([[p.reference[t] for t in targets] for p in training]).reshape(len(training), len(targets))
    scale = np.where(Y_base.std(axis=0) > 0, Y_base.std(axis=0), 1.0)

    quick = PrequentialSettings()  # the offline replay's retrain PLS, so online and offline choose alike

    def fit(rows: np.ndarray):
        X, Y = np.vstack([X_base, X_pairs[rows]]), np.vstack([Y_base, Y_pairs[rows]])
        _, first = np.unique(rows, return_index=True)  # cross-validation reads each spectrum once
        unique = np.concatenate([np.arange(len(X_base)), len(X_base) + first])
        predicts = [fit_retrain_pls(X, Y[:, j], quick, unique)[0] for j in range(len(targets))]
        return lambda r: np.column_stack([predict(X_pairs[r]) for predict in predicts]) / scale

    options = [TrainingWindow.parse(name) for name in settings.retrain.training_windows]
    return choose_window(options, np.arange(len(training)), Y_pairs / scale, fit, settings.gate.holdout_pairs)


def _copy_numbers(rows: np.ndarray) -> list[tuple[int, int]]:
    """(n, row) with n = how many times ``row`` came before in ``rows`` (0 for its first copy)."""
    seen: dict[int, int] = {}
    numbered = []
    for row in rows.tolist():
        numbered.append((seen.get(row, 0), row))
        seen[row] = seen.get(row, 0) + 1
    return numbered


def run_retrain(settings: TrainerServiceSettings, workdir: Path, archived_until: datetime | None = None) -> RetrainOutcome:
    from nirstream.trainer.train_settings import TrainSettings
    from nirstream.trainer.training_data import load_training_protocol
    from nirstream.trainer.training_run import run_training

    started = time.perf_counter()
    registry = ModelRegistry(settings.registry)
    champion_version = registry.champion()
    if champion_version is None:
        return RetrainOutcome("skipped", "no champion: the loop improves a model, `nirstream train` makes the first")
    champion = Predictor(registry.load(champion_version))
    targets = list(champion.targets)
    with PlantStore(settings.store) as store:
        pairs = [p for p in store.pairs(archived_until=archived_until)
                 if p.grid == champion.grid and all(t in p.reference for t in targets)]
    training, holdout = split_pairs(pairs, settings.gate.holdout_pairs)
    if len(holdout) < settings.gate.holdout_pairs:
        return RetrainOutcome("skipped", f"{len(pairs)} stored pairs on the champion's grid with {targets}: fewer than "
                                         f"the {settings.gate.holdout_pairs} the gate holds out", champion=champion_version)
    workdir.mkdir(parents=True, exist_ok=True)
    base = {"targets": targets, **settings.base_training} if "data" not in settings.base_training else settings.base_training
    base_protocol = load_training_protocol(TrainSettings(**base, registry=settings.registry))
    window = choose_training_pairs(training, base_protocol, settings)
    chosen_rows = window.window.rows(np.arange(len(training)))
    extra = workdir / "plant-pairs.csv"
    # a pair counted several times (recency weight) gets a distinct id per copy
    ids = [training[i].sample_id + (f"#{n}" if n else "") for n, i in _copy_numbers(chosen_rows)]
    training_frame(ids, [training[i].reference for i in chosen_rows], [training[i].spectrum for i in chosen_rows],
                   targets, champion.grid).to_csv(extra, index=False)
    train_settings = TrainSettings(**{**base, "extra_training": extra, "promote": False, "registry": settings.registry,
                                      "report_dir": workdir / "report", "by": ACTOR,
                                      "signing_key_file": settings.signing_key_file,
                                      "bootstrap_servers": settings.bootstrap_servers,
                                      "models_topic": settings.topics.models})
    summary = run_training(train_settings, verbose=2)
    version = str(summary["version"])
    candidate = Predictor(registry.load(version))
    protocol = base_protocol  # its validation (gate) split is the retrain's: the plant pairs only join training
    gate_name, gate_split = protocol.gate_data
    X_hold = np.array([p.spectrum for p in holdout])
    candidate_hold, champion_hold = candidate.predict(X_hold).values, champion.predict(X_hold).values
    candidate_base, champion_base = candidate.predict(gate_split.X).values, champion.predict(gate_split.X).values
    y_base = protocol.y(gate_split)
    verdicts: dict[str, GateVerdict] = {}
    for j, target in enumerate(targets):
        reference = np.array([p.reference[target] for p in holdout])
        c, k = candidate.targets.index(target), champion.targets.index(target)
        base_validation = None
        if target in protocol.targets:
            b = list(protocol.targets).index(target)
            base_validation = (y_base[:, b], candidate_base[:, c], champion_base[:, k])
        verdicts[target] = judge(reference, candidate_hold[:, c], champion_hold[:, k], settings.gate, settings.retrain,
                                 base_validation=base_validation)
    passed = all(v.passed for v in verdicts.values())
    reason = "; ".join(f"{t}: {v.reason}" for t, v in verdicts.items())
    details = {"gate": "time-forward", "champion": champion_version, "holdout_pairs": len(holdout),
               "training_pairs": len(training), "training_window": window.window.name,
               "training_window_choice": {"reason": window.reason, "scores": window.scores},
               "base_validation": gate_name,
               "verdicts": {t: v.as_record() for t, v in verdicts.items()}}
    if not passed:
        registry.reject(version, f"time-forward gate: {reason}", by=ACTOR, details=details)
        announce_change(registry, version, f"rejected by the time-forward gate: {reason}", settings.bootstrap_servers,
                        settings.topics.models, event_type="rejected", client_options=settings.kafka_producer_options())
        status = "rejected"
    elif settings.gate.mode == "automatic":
        promote_and_announce(registry, version, f"time-forward gate: {reason}", by=ACTOR,
                             bootstrap_servers=settings.bootstrap_servers, models_topic=settings.topics.models,
                             client_options=settings.kafka_producer_options())
        status = "promoted"
    else:
        registry.propose(version, f"time-forward gate passed; waits for approval: {reason}", by=ACTOR, details=details)
        announce_change(registry, version, "proposed: waits for `nirstream models approve`", settings.bootstrap_servers,
                        settings.topics.models, event_type="proposed", client_options=settings.kafka_producer_options())
        status = "proposed"
    log.info("retrain: version %s %s: %s", version, status, reason)
    return RetrainOutcome(status, reason, version, champion_version, len(training), window.window.name, len(holdout),
                          time.perf_counter() - started, {t: v.as_record() for t, v in verdicts.items()})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nirstream.trainer.retrain_job", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, help="the service's TOML settings file")
    parser.add_argument("--overrides", default="{}", help="JSON of settings given on the service's command line")
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--output", type=Path, required=True, help="where the outcome's JSON goes")
    parser.add_argument("--archived-until", type=datetime.fromisoformat,
                        help="train on the pairs the store held at this moment (the service's decision)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = TrainerServiceSettings.load(args.config, **json.loads(args.overrides))
    outcome = run_retrain(settings, args.workdir, args.archived_until)
    args.output.write_text(json.dumps(asdict(outcome), default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
