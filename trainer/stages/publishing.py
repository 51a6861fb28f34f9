"""Stage 5: write the deployed model as a registry version, then gate it: promote (and announce) or reject.

The bundle stores the model's own fitted ``SpectralPreprocessor`` (on the analyzers' whole
wavelength grid; it cuts the model's window itself): the worker runs what the trainer fitted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from nirstream.core.artifacts.bundle import PredictionIntervals, write_bundle
from nirstream.core.artifacts.registry import ModelRegistry
from nirstream.core.artifacts.signing import configured_signer
from nirstream.core.chemometrics.domain import ApplicabilityDomain
from nirstream.core.chemometrics.figures_of_merit import regression_metrics
from nirstream.core.serving.predictor import Predictor
from nirstream.trainer.champion import promote_and_announce
from nirstream.trainer.data_splits import Protocol
from nirstream.trainer.intervals import narrow_targets
from nirstream.trainer.promotion_gate import PromotionDecision, decide_promotion
from nirstream.trainer.stages.calibration import IntervalCalibration
from nirstream.trainer.stages.evaluation import HeldOutFigures
from nirstream.trainer.stages.family import FamilyChoice
from nirstream.trainer.stages.fitting import Candidate
from nirstream.trainer.train_settings import TrainSettings

log = logging.getLogger(__name__)

PARITY_SPECTRA = 64  # real training spectra on which the ONNX export must match the Keras network


@dataclass
class GateOutcome:
    version: str
    decision: PromotionDecision
    domain_limits: dict  # the applicability domain's limits the bundle stores


def publish_and_gate(settings: TrainSettings, protocol: Protocol, choice: FamilyChoice, calibration: IntervalCalibration,
                     figures: HeldOutFigures) -> GateOutcome:
    registry = ModelRegistry(settings.registry, signer=configured_signer(settings.signing_key_file))
    version, domain = write_candidate(registry, settings, protocol, choice.deployed, choice.reason, calibration.intervals,
                                      choice.validation_predicted, figures.metrics, figures.coverage)
    decision = _gate(settings, registry, version, protocol, choice)
    return GateOutcome(version, decision, domain.limits_)


def write_candidate(registry: ModelRegistry, settings: TrainSettings, protocol: Protocol, deployed: Candidate, reason: str,
                    intervals: PredictionIntervals | None = None, validation_predicted: np.ndarray | None = None,
                    tests: dict | None = None, coverage: dict | None = None) -> tuple[str, ApplicabilityDomain]:
    """Publish ``deployed`` as a new version of ``registry`` with the figures known (the recovery after a failure
    may know none); return the version and the applicability domain it stores."""
    targets = protocol.targets
    # the choosing spectra: the validation split, or (small-set rule) the training split predicted out of fold
    choosing = "cross_validation" if protocol.cross_validated else "validation"
    y_train, y_val = protocol.y(protocol.train), protocol.y(protocol.train if protocol.cross_validated else protocol.validation)
    train_features = deployed.preprocessor.transform(protocol.train.X)
    domain = ApplicabilityDomain().fit(train_features)
    validation = ({} if validation_predicted is None else
                  {t: regression_metrics(y_val[:, j], validation_predicted[:, j]) for j, t in enumerate(targets)})
    metadata = dict(
        parity_features=train_features[:PARITY_SPECTRA],
        targets=list(targets), units={t: protocol.unit(t) for t in targets}, variant=settings.variant,
        target_mean=deployed.target_mean, target_scale=deployed.target_scale,
        model_kind="deep-chemometrics-cnn" if deployed.family == "cnn" else "pls",
        target_range={t: (float(np.min(y_train[:, j])), float(np.max(y_train[:, j]))) for j, t in enumerate(targets)},
        intervals=intervals,
        metrics={choosing: validation, "tests": tests or {}, "interval_coverage": coverage or {}},
        training={"protocol": protocol.name, "family": deployed.family, "family_choice": reason,
                  "splits": protocol.split_description, "n_train": protocol.train.n_samples,
                  "n_validation": protocol.validation.n_samples,
                  **({"small_set": protocol.small_set} if protocol.small_set else {}), **deployed.training},
        dataset_fingerprint=protocol.train.fingerprint(),
        dataset_name=protocol.train.name,
    )
    version = registry.publish(lambda directory: write_bundle(directory, deployed.model, deployed.preprocessor, domain,
                                                              **metadata), by=settings.by)
    return version, domain


def _gate(settings: TrainSettings, registry: ModelRegistry, version: str, protocol: Protocol,
          choice: FamilyChoice) -> PromotionDecision:
    """Promote (and announce) or reject the new version on the gate data: the gate or validation split, or (small-set
    rule) the training split, where the candidate's out-of-fold predictions meet the champion's and the mean of the
    other folds (a champion trained on these spectra has seen them: the comparison favours keeping it)."""
    targets, y_train = protocol.targets, protocol.y(protocol.train)
    candidate = Predictor(registry.load(version))
    gate_name, gate = protocol.gate_data
    out_of_fold = protocol.cross_validated and protocol.gate is None
    if out_of_fold:
        gate_name, gate = "training (out-of-fold)", protocol.train
    # Skill is judged against predicting the training mean, unless the gate data is too narrow to show skill (the
    # tablets' validate_1 spans 11 % of the training spread: a constant near its centre beats any honest model there).
    gate_narrow = narrow_targets(y_train, protocol.y(gate), targets)
    no_skill = choice.out_of_fold_mean if out_of_fold else y_train.mean(axis=0)
    decision = decide_promotion(registry, candidate, gate.X, protocol.y(gate), settings.promote_margin, gate_name,
                                training_means=None if gate_narrow else no_skill,
                                candidate_predicted=choice.validation_predicted if out_of_fold else None)
    if gate_narrow:
        decision.reason += (f" (no-skill check skipped: the {gate_name} targets spread less than half as much as the "
                            f"training targets: {', '.join(gate_narrow)})")
    if not settings.promote:
        log.info("version %s published; the caller decides (validation gate said: %s)", version, decision.reason)
    elif decision.promote:
        promote_and_announce(registry, version, decision.reason, by=settings.by,
                             bootstrap_servers=settings.bootstrap_servers, models_topic=settings.models_topic)
    else:
        registry.reject(version, decision.reason, by=settings.by)
    if settings.promote:
        log.info("version %s %s: %s", version, "promoted" if decision.promote else "rejected", decision.reason)
    return decision
