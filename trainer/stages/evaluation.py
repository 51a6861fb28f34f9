"""Stage 4: the deployed model's (and the CNN's) figures on the test splits, each beside the mean predictor's (the
training mean as the prediction). Reported only: they choose nothing."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nirstream.core.chemometrics.figures_of_merit import figures_per_target, paired_rmsep_difference, rmse
from nirstream.trainer.data_splits import Protocol
from nirstream.trainer.intervals import empirical_coverage
from nirstream.trainer.stages.calibration import IntervalCalibration
from nirstream.trainer.stages.family import FamilyChoice
from nirstream.trainer.stages.fitting import FittedCandidates


@dataclass
class HeldOutFigures:
    predictions: dict[str, np.ndarray]  # test set -> the deployed model's predictions
    metrics: dict[str, dict]  # test set -> target -> figures of the deployed model (with the mean predictor's RMSEP)
    cnn_metrics: dict[str, dict]  # the same for the CNN, deployed or not (empty without a CNN)
    coverage: dict[str, dict]  # test set -> target -> the intervals' empirical coverage
    cnn_minus_pls: dict[str, dict]  # target -> test set -> RMSEP(CNN) - RMSEP(PLS candidate), the two that competed
    deployed_minus_pls: dict[str, dict]  # target -> test set -> RMSEP(deployed) - RMSEP(baseline CV-PLS)
    mean_predictor: dict[str, dict[str, float]]  # test set -> target -> RMSEP of predicting the training mean


def evaluate_on_tests(fitted: FittedCandidates, choice: FamilyChoice, calibration: IntervalCalibration,
                      protocol: Protocol, seed: int) -> HeldOutFigures:
    targets, deployed, intervals = protocol.targets, choice.deployed, calibration.intervals
    mean_predictor = mean_predictor_rmsep(protocol)
    predictions = {name: deployed.predict(data.X) for name, data in protocol.tests.items()}  # figures and plots

    def figures(predicted_by_test: dict[str, np.ndarray]) -> dict[str, dict]:
        return {name: {t: {**m, "mean_predictor_rmsep": mean_predictor[name][t]} for t, m in
                       figures_per_target(protocol.y(protocol.tests[name]), predicted, targets, seed).items()}
                for name, predicted in predicted_by_test.items()}

    by_family = {family: predictions if family == deployed.family else
                 {name: candidate.predict(data.X) for name, data in protocol.tests.items()}
                 for family, candidate in fitted.candidates.items()}
    coverage = ({name: empirical_coverage(protocol.y(protocol.tests[name]), predicted, intervals, targets)
                 for name, predicted in predictions.items()} if intervals else {})
    competed = {t: {name: by_family["pls"][name][:, j] for name in protocol.tests} for j, t in enumerate(targets)} \
        if {"cnn", "pls"} <= set(by_family) else {}
    return HeldOutFigures(predictions, figures(predictions), figures(by_family.get("cnn", {})), coverage,
                          _differences_from_pls(protocol, by_family.get("cnn", {}), competed, seed),
                          _differences_from_pls(protocol, predictions, fitted.pls_predictions, seed), mean_predictor)


def mean_predictor_rmsep(protocol: Protocol) -> dict[str, dict[str, float]]:
    """Per test set and target: the RMSEP of predicting the training mean (the model without skill)."""
    means = protocol.y(protocol.train).mean(axis=0)
    return {name: {t: rmse(np.full(data.n_samples, means[j]), protocol.y(data)[:, j]) for j, t in enumerate(protocol.targets)}
            for name, data in protocol.tests.items()}


def _differences_from_pls(protocol: Protocol, predictions: dict[str, np.ndarray], pls_predictions: dict,
                          seed: int) -> dict[str, dict]:
    """Per target and test set: RMSEP(model) − RMSEP(a PLS's ``pls_predictions``) with its paired bootstrap interval."""
    return {target: {name: paired_rmsep_difference(protocol.y(protocol.tests[name])[:, j], predictions[name][:, j],
                                                   pls_predictions[target][name], seed=seed)
                     for name in protocol.tests}
            for j, target in enumerate(protocol.targets) if target in pls_predictions and predictions}
