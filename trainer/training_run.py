"""``nirstream train``: the stages in order (see ``nirstream.trainer.stages``), from the data to the report.

Everything about the data is checked before the first fit (``screening``); if a stage after fitting
fails, the fitted model is written where the user can serve it (``recovery``), never lost.
"""

from __future__ import annotations

import time
from typing import Any

from nirstream.core.artifacts.registry import ModelRegistry
from nirstream.trainer.stages.calibration import IntervalCalibration, calibrate_deployed
from nirstream.trainer.stages.domain import check_domain
from nirstream.trainer.stages.evaluation import HeldOutFigures, evaluate_on_tests
from nirstream.trainer.stages.family import FamilyChoice, choose_family
from nirstream.trainer.stages.fitting import FittedCandidates, fit_candidates
from nirstream.trainer.stages.publishing import GateOutcome, publish_and_gate
from nirstream.trainer.stages.recovery import FittedModelKept, keep_fitted_model
from nirstream.trainer.stages.region import choose_region
from nirstream.trainer.stages.reporting import write_training_report
from nirstream.trainer.stages.screening import screen_protocol
from nirstream.trainer.train_settings import TrainSettings
from nirstream.trainer.training_data import load_training_protocol


def run_training(settings: TrainSettings, verbose: int | str = "auto") -> dict[str, Any]:
    """Screen, fit, choose, calibrate, evaluate, publish and gate, report; returns the report's summary."""
    started = time.perf_counter()
    screened = screen_protocol(load_training_protocol(settings))
    protocol, region = choose_region(settings, screened.protocol)
    screened.protocol = protocol  # the report's splits are the model's: its window set
    fitted = fit_candidates(settings, protocol, verbose)
    choice: FamilyChoice | None = None
    calibration: IntervalCalibration | None = None
    figures: HeldOutFigures | None = None
    outcome: GateOutcome | None = None
    try:
        choice = choose_family(fitted, protocol, settings.family, settings.seed)
        calibration = calibrate_deployed(settings, choice.deployed, protocol, choice.validation_predicted)
        figures = evaluate_on_tests(fitted, choice, calibration, protocol, settings.seed)
        outcome = publish_and_gate(settings, protocol, choice, calibration, figures)
        domain = check_domain(ModelRegistry(settings.registry), outcome.version, protocol)
        return write_training_report(settings, screened, fitted, choice, calibration, figures, outcome, started,
                                     region, domain)
    except Exception as exc:
        if outcome is not None:
            raise  # the model is in the registry already
        raise _kept(settings, protocol, fitted, choice, calibration, figures, exc) from exc


def _kept(settings, protocol, fitted: FittedCandidates, choice: FamilyChoice | None,
          calibration: IntervalCalibration | None, figures: HeldOutFigures | None, failure: Exception) -> FittedModelKept:
    """The fitted model written for recovery, with what was computed before ``failure``."""
    candidate = choice.deployed if choice else next(iter(fitted.candidates.values()))
    reason = choice.reason if choice else f"{candidate.family.upper()} (kept after a failure, before the family was chosen)"
    return keep_fitted_model(settings, protocol, candidate, reason, failure,
                             intervals=calibration.intervals if calibration else None,
                             validation_predicted=choice.validation_predicted if choice else None,
                             tests=figures.metrics if figures else None, coverage=figures.coverage if figures else None)
