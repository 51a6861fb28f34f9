"""``nirstream train``: the stages in order (see ``nirstream.trainer.stages``), from the data to the report."""

from __future__ import annotations

import time
from typing import Any

from nirstream.trainer.stages.calibration import calibrate_deployed
from nirstream.trainer.stages.evaluation import evaluate_on_tests
from nirstream.trainer.stages.family import choose_family
from nirstream.trainer.stages.fitting import fit_candidates
from nirstream.trainer.stages.publishing import publish_and_gate
from nirstream.trainer.stages.reporting import write_training_report
from nirstream.trainer.train_settings import TrainSettings
from nirstream.trainer.training_data import load_training_protocol


def run_training(settings: TrainSettings, verbose: int | str = "auto") -> dict[str, Any]:
    """Fit, choose, calibrate, evaluate, publish and gate, report; returns the report's summary."""
    started = time.perf_counter()
    protocol = load_training_protocol(settings)
    fitted = fit_candidates(settings, protocol, verbose)
    choice = choose_family(fitted, protocol, settings.family)
    calibration = calibrate_deployed(settings, choice.deployed, protocol, choice.validation_predicted)
    figures = evaluate_on_tests(fitted, choice, calibration, protocol, settings.seed)
    outcome = publish_and_gate(settings, protocol, choice, calibration, figures)
    return write_training_report(settings, protocol, fitted, choice, calibration, figures, outcome,
                                 started)
