"""Stage 4: the deployed model's (and the CNN's) figures on the test splits. Reported only: they choose nothing."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nirstream.core.chemometrics.figures_of_merit import figures_per_target, paired_rmsep_difference
from nirstream.trainer.data_splits import Protocol
from nirstream.trainer.intervals import empirical_coverage
from nirstream.trainer.stages.calibration import IntervalCalibration
from nirstream.trainer.stages.family import FamilyChoice
from nirstream.trainer.stages.fitting import FittedCandidates


@dataclass
class HeldOutFigures:
    predictions: dict[str, np.ndarray]  # test set -> the deployed model's predictions
    metrics: dict[str, dict]  # test set -> target -> figures of the deployed model
    cnn_metrics: dict[str, dict]  # the same for the CNN, deployed or not (empty without a CNN)
    coverage: dict[str, dict]  # test set -> target -> the intervals' empirical coverage
    cnn_minus_pls: dict[str, dict]  # target -> test set -> RMSEP(CNN) - RMSEP(baseline PLS), bootstrap interval
    deployed_minus_pls: dict[str, dict]  # the same for the deployed model


def evaluate_on_tests(fitted: FittedCandidates, choice: FamilyChoice, calibration: IntervalCalibration,
                      protocol: Protocol, seed: int) -> HeldOutFigures:
    targets, deployed, intervals = protocol.targets, choice.deployed, calibration.intervals
    predictions = {name: deployed.predict(data.X) for name, data in protocol.tests.items()}  # figures and plots
    metrics = {name: figures_per_target(protocol.y(protocol.tests[name]), predicted, targets, seed)
               for name, predicted in predictions.items()}
    cnn_predictions = {}  # the CNN's test predictions, deployed or not: its figures and the CNN - PLS differences
    if "cnn" in fitted.candidates:
        cnn_predictions = predictions if deployed.family == "cnn" else {
            name: fitted.candidates["cnn"].predict(data.X) for name, data in protocol.tests.items()}
    cnn_metrics = {name: figures_per_target(protocol.y(protocol.tests[name]), predicted, targets, seed)
                   for name, predicted in cnn_predictions.items()}
    coverage = ({name: empirical_coverage(protocol.y(protocol.tests[name]), predicted, intervals, targets)
                 for name, predicted in predictions.items()} if intervals else {})
    return HeldOutFigures(predictions, metrics, cnn_metrics, coverage,
                          _differences_from_baseline_pls(protocol, cnn_predictions, fitted.pls_predictions, seed),
                          _differences_from_baseline_pls(protocol, predictions, fitted.pls_predictions, seed))


def _differences_from_baseline_pls(protocol: Protocol, predictions: dict[str, np.ndarray], pls_predictions: dict,
                                   seed: int) -> dict[str, dict]:
    """Per target and test set: RMSEP(model) − RMSEP(baseline CV-PLS) with its paired bootstrap interval."""
    return {target: {name: paired_rmsep_difference(protocol.y(protocol.tests[name])[:, j], predictions[name][:, j],
                                                   pls_predictions[target][name], seed=seed)
                     for name in protocol.tests}
            for j, target in enumerate(protocol.targets) if target in pls_predictions and predictions}
