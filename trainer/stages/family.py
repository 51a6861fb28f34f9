"""Stage 2: the family to deploy (CNN or PLS), chosen on the validation split."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from nirstream.core.chemometrics.figures_of_merit import rmse
from nirstream.trainer.data_splits import Protocol
from nirstream.trainer.stages.fitting import Candidate, FittedCandidates

log = logging.getLogger(__name__)


@dataclass
class FamilyChoice:
    deployed: Candidate
    reason: str  # for the report and the console
    validation_rmsep: dict[str, dict[str, float]]  # family -> target -> RMSEP on the validation split
    validation_predicted: np.ndarray  # the deployed candidate's validation predictions


def choose_family(fitted: FittedCandidates, protocol: Protocol, wanted: str) -> FamilyChoice:
    """The family to deploy: the one asked for, or (``auto``) the lower validation RMSEP, averaged over targets
    relative to the other family (unit-free). Ties keep the CNN."""
    candidates = fitted.candidates
    predictions = {name: c.predict(protocol.validation.X) for name, c in candidates.items()}
    y_val = protocol.y(protocol.validation)
    scores = {name: dict(zip(protocol.targets, rmse(predicted, y_val, axis=0).tolist(), strict=True))
              for name, predicted in predictions.items()}
    if wanted != "auto" or len(candidates) == 1:
        name = wanted if wanted != "auto" else next(iter(candidates))
        why = f"family={wanted}" if wanted != "auto" else "the only family fitted (PLS off)"
        reason = f"{name.upper()} ({why})"
    else:
        ratio = float(np.mean([scores["pls"][t] / max(scores["cnn"][t], 1e-12) for t in protocol.targets]))
        name = "pls" if ratio < 1 else "cnn"
        versus = ", ".join(f"{t} CNN {scores['cnn'][t]:.3f} / PLS {scores['pls'][t]:.3f}" for t in protocol.targets)
        reason = f"{name.upper()}: lower validation RMSEP ({versus}; PLS/CNN ratio {ratio:.3f})"
    if fitted.cnn_failure:
        reason = f"PLS: {fitted.cnn_failure}"
    log.info("deploying %s", reason)
    return FamilyChoice(candidates[name], reason, scores, predictions[name])
