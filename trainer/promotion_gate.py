"""Whether a published candidate becomes champion.

The promotion gate compares candidate and champion on the gate data (the validation split, or a
split the user set aside for it), never on the split the report calls test.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nirstream.core.artifacts.bundle import BundleError
from nirstream.core.chemometrics.figures_of_merit import rmse
from nirstream.core.serving.predictor import Predictor
from nirstream.core.artifacts.registry import ModelRegistry


@dataclass
class PromotionDecision:
    promote: bool
    reason: str
    gate_data: str
    candidate_rmsep: dict[str, float]
    champion_rmsep: dict[str, float] | None
    champion_version: str | None


def _rmsep_per_target(predictor: Predictor, X: np.ndarray, y: np.ndarray, targets: tuple[str, ...]) -> dict[str, float]:
    predicted = predictor.predict(X).values
    return {t: rmse(predicted[:, predictor.targets.index(t)], y[:, j]) for j, t in enumerate(targets)}


def decide_promotion(registry: ModelRegistry, candidate: Predictor, X_gate: np.ndarray, y_gate: np.ndarray, margin: float,
                     gate_data: str = "validation", training_means: np.ndarray | None = None,
                     candidate_predicted: np.ndarray | None = None) -> PromotionDecision:
    """Promote only if the candidate beats the champion on the gate data by ``margin`` (relative).

    ``y_gate`` has one column per candidate target. With several targets the score is the mean over targets of
    candidate RMSEP / champion RMSEP (unit-free, each constituent counts the same); promotion needs it below
    ``1 - margin``. With ``training_means`` (one per target) a candidate must first beat, for every target, the
    model without skill that predicts the training mean: otherwise it is not served, champion or not.
    ``training_means`` may also be one row per gate spectrum, and ``candidate_predicted`` (n, k) replaces the
    candidate's own predictions of ``X_gate``: the small-set rule's out-of-fold predictions of the training split.
    """
    targets = candidate.targets
    y_gate = np.reshape(y_gate, (len(y_gate), -1))
    candidate_rmsep = (_rmsep_per_target(candidate, X_gate, y_gate, targets) if candidate_predicted is None else
                       {t: rmse(np.reshape(candidate_predicted, y_gate.shape)[:, j], y_gate[:, j]) for j, t in enumerate(targets)})
    shown = ", ".join(f"{t} {v:.3f}" for t, v in candidate_rmsep.items())
    if training_means is not None:
        baseline = np.broadcast_to(training_means, y_gate.shape)
        no_skill = {t: rmse(baseline[:, j], y_gate[:, j]) for j, t in enumerate(targets)}
        unskilled = [t for t in targets if not candidate_rmsep[t] < no_skill[t]]
        if unskilled:
            versus = ", ".join(f"{t} {candidate_rmsep[t]:.3f} vs {no_skill[t]:.3f}" for t in unskilled)
            return PromotionDecision(False, f"{gate_data} RMSEP does not beat predicting the training mean ({versus}): "
                                            "a model without skill is not served", gate_data, candidate_rmsep, None, None)
    champion_version = registry.champion()
    if champion_version is None:
        return PromotionDecision(True, f"no champion yet ({gate_data} RMSEP {shown})", gate_data, candidate_rmsep, None, None)
    try:
        champion = Predictor(registry.load(champion_version))
    except BundleError as exc:
        return PromotionDecision(True, f"champion {champion_version} unusable ({exc})", gate_data, candidate_rmsep, None,
                                 champion_version)
    if set(champion.targets) != set(targets) or champion.grid != candidate.grid:
        return PromotionDecision(
            False,
            f"champion {champion_version} predicts {list(champion.targets)} on its grid, the candidate {list(targets)}: "
            "promote by hand if intended", gate_data, candidate_rmsep, None, champion_version,
        )
    champion_rmsep = _rmsep_per_target(champion, X_gate, y_gate, targets)
    ratio = float(np.mean([candidate_rmsep[t] / max(champion_rmsep[t], 1e-12) for t in targets]))
    versus = ", ".join(f"{t} {candidate_rmsep[t]:.3f} vs {champion_rmsep[t]:.3f}" for t in targets)
    if ratio < 1 - margin:
        reason = f"{gate_data} RMSEP beats champion {champion_version} ({versus}; ratio {ratio:.3f})"
        return PromotionDecision(True, reason, gate_data, candidate_rmsep, champion_rmsep, champion_version)
    reason = (f"{gate_data} RMSEP does not beat champion {champion_version} by the {margin:.0%} margin "
              f"({versus}; ratio {ratio:.3f})")
    return PromotionDecision(False, reason, gate_data, candidate_rmsep, champion_rmsep, champion_version)
