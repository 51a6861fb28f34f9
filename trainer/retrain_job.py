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
    holdout_pairs: int = 0
    seconds: float = 0.0
    verdicts: dict[str, dict[str, Any]] = field(default_factory=dict)


def split_pairs(pairs: list[StoredPair], holdout: int) -> tuple[list[StoredPair], list[StoredPair]]:
    """Older pairs to train on, the newest ``holdout`` (lab time order) to judge on."""
    return pairs[:-holdout] if holdout else pairs, pairs[-holdout:] if holdout else []


def run_retrain(settings: TrainerServiceSettings, workdir: Path) -> RetrainOutcome:
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
        pairs = [p for p in store.pairs() if p.grid == champion.grid and all(t in p.reference for t in targets)]
    training, holdout = split_pairs(pairs, settings.gate.holdout_pairs)
    if len(holdout) < settings.gate.holdout_pairs:
        return RetrainOutcome("skipped", f"{len(pairs)} stored pairs on the champion's grid with {targets}: fewer than "
                                         f"the {settings.gate.holdout_pairs} the gate holds out", champion=champion_version)
    workdir.mkdir(parents=True, exist_ok=True)
    extra = workdir / "plant-pairs.csv"
    training_frame([p.sample_id for p in training], [p.reference for p in training], [p.spectrum for p in training],
                   targets, champion.grid).to_csv(extra, index=False)
    base = {"targets": targets, **settings.base_training} if "data" not in settings.base_training else settings.base_training
    train_settings = TrainSettings(**{**base, "extra_training": extra, "promote": False, "registry": settings.registry,
                                      "report_dir": workdir / "report", "by": ACTOR,
                                      "bootstrap_servers": settings.bootstrap_servers,
                                      "models_topic": settings.topics.models})
    summary = run_training(train_settings, verbose=2)
    version = str(summary["version"])
    candidate = Predictor(registry.load(version))
    protocol = load_training_protocol(train_settings)
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
               "training_pairs": len(training), "base_validation": gate_name,
               "verdicts": {t: v.as_record() for t, v in verdicts.items()}}
    if not passed:
        registry.reject(version, f"time-forward gate: {reason}", by=ACTOR, details=details)
        announce_change(registry, version, f"rejected by the time-forward gate: {reason}", settings.bootstrap_servers,
                        settings.topics.models, event_type="rejected")
        status = "rejected"
    elif settings.gate.mode == "automatic":
        promote_and_announce(registry, version, f"time-forward gate: {reason}", by=ACTOR,
                             bootstrap_servers=settings.bootstrap_servers, models_topic=settings.topics.models)
        status = "promoted"
    else:
        registry.propose(version, f"time-forward gate passed; waits for approval: {reason}", by=ACTOR, details=details)
        announce_change(registry, version, "proposed: waits for `nirstream models approve`", settings.bootstrap_servers,
                        settings.topics.models, event_type="proposed")
        status = "proposed"
    log.info("retrain: version %s %s: %s", version, status, reason)
    return RetrainOutcome(status, reason, version, champion_version, len(training), len(holdout),
                          time.perf_counter() - started, {t: v.as_record() for t, v in verdicts.items()})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nirstream.trainer.retrain_job", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, help="the service's TOML settings file")
    parser.add_argument("--overrides", default="{}", help="JSON of settings given on the service's command line")
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--output", type=Path, required=True, help="where the outcome's JSON goes")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = TrainerServiceSettings.load(args.config, **json.loads(args.overrides))
    outcome = run_retrain(settings, args.workdir)
    args.output.write_text(json.dumps(asdict(outcome), default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
