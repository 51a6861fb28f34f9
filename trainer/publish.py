"""Turn a fitted CNN into a model bundle, and decide whether it becomes champion.

The bundle stores the regressor's own fitted ``SpectralPreprocessor`` (on the analyzers' whole
wavelength grid; it cuts the model's window itself): the worker runs what the trainer fitted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from nirstream.core.bundle import BundleError, write_bundle
from nirstream.core.domain import ApplicabilityDomain
from nirstream.core.figures_of_merit import regression_metrics
from nirstream.core.predictor import Predictor
from nirstream.core.registry import ModelRegistry
from trainer.cnn import CNNRegressor

log = logging.getLogger(__name__)


@dataclass
class PromotionDecision:
    promote: bool
    reason: str
    candidate_rmsep: float
    champion_rmsep: float | None
    champion_version: str | None


def decide_promotion(
    registry: ModelRegistry, candidate: Predictor, X_holdout: np.ndarray, y_holdout: np.ndarray, margin: float
) -> PromotionDecision:
    """Promote only if the candidate's held-out RMSEP beats the champion's by ``margin`` (relative)."""
    candidate_rmsep = regression_metrics(y_holdout, candidate.predict(X_holdout).values)["rmsep"]
    champion_version = registry.champion()
    if champion_version is None:
        return PromotionDecision(True, "no champion yet", candidate_rmsep, None, None)
    try:
        champion = Predictor(registry.load(champion_version))
    except BundleError as exc:
        return PromotionDecision(True, f"champion {champion_version} unusable ({exc})", candidate_rmsep, None, champion_version)
    if champion.target != candidate.target or champion.grid != candidate.grid:
        return PromotionDecision(
            False,
            f"champion {champion_version} predicts {champion.target!r} on another grid: promote by hand if intended",
            candidate_rmsep, None, champion_version,
        )
    champion_rmsep = regression_metrics(y_holdout, champion.predict(X_holdout).values)["rmsep"]
    if candidate_rmsep < champion_rmsep * (1 - margin):
        reason = f"held-out RMSEP {candidate_rmsep:.3f} beats champion {champion_version} ({champion_rmsep:.3f})"
        return PromotionDecision(True, reason, candidate_rmsep, champion_rmsep, champion_version)
    reason = (f"held-out RMSEP {candidate_rmsep:.3f} does not beat champion {champion_version} "
              f"({champion_rmsep:.3f}) by the {margin:.0%} margin")
    return PromotionDecision(False, reason, candidate_rmsep, champion_rmsep, champion_version)


def publish_candidate(registry: ModelRegistry, regressor: CNNRegressor, domain: ApplicabilityDomain, **metadata) -> str:
    """Write the fitted regressor (its network and the very preprocessor it was fitted with) as a new version."""
    return registry.publish(
        lambda directory: write_bundle(
            directory, regressor.model_, regressor.preprocessor_, domain,
            target_mean=regressor.target_mean_, target_scale=regressor.target_scale_, **metadata,
        )
    )
