"""Stage 2: the family to deploy (CNN or PLS), chosen on the validation split, or (small-set rule) on out-of-fold
predictions of the training split."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from nirstream.core.chemometrics.figures_of_merit import rmse
from nirstream.trainer.data_splits import Protocol
from nirstream.trainer.intervals import CALIBRATION_FOLDS, cross_validated_predictions
from nirstream.trainer.stages.fitting import Candidate, FittedCandidates

log = logging.getLogger(__name__)


@dataclass
class FamilyChoice:
    deployed: Candidate
    reason: str  # for the report and the console
    validation_rmsep: dict[str, dict[str, float]]  # family -> target -> RMSEP on the choosing spectra
    validation_predicted: np.ndarray  # the deployed candidate's predictions of the choosing spectra
    chosen_on: str = "validation"  # the choosing spectra: "validation", or "cross-validation" (out-of-fold, training)
    mean_predictor_rmsep: dict[str, float] | None = None  # target -> the same figure for predicting the training mean
    out_of_fold_mean: np.ndarray | None = None  # small-set rule: each training spectrum's mean predictor (other folds)


def choose_family(fitted: FittedCandidates, protocol: Protocol, wanted: str, seed: int = 0) -> FamilyChoice:
    """The family to deploy: the one asked for, or (``auto``) the lower validation RMSEP, averaged over targets
    relative to the other family (unit-free). Ties keep the CNN. Under the small-set rule the RMSEPs are those of
    out-of-fold predictions of the training split (each fold's model refitted with the candidate's settings)."""
    candidates = fitted.candidates
    chosen_on = "cross-validation" if protocol.cross_validated else "validation"
    predictions, y_val, mean_predicted = _choosing_predictions(candidates, protocol, seed)
    scores = {name: dict(zip(protocol.targets, rmse(predicted, y_val, axis=0).tolist(), strict=True))
              for name, predicted in predictions.items()}
    mean_rmsep = dict(zip(protocol.targets, rmse(mean_predicted, y_val, axis=0).tolist(), strict=True))
    what = "validation RMSEP" if chosen_on == "validation" else f"{CALIBRATION_FOLDS}-fold out-of-fold RMSECV"
    if wanted != "auto" or len(candidates) == 1:
        name = wanted if wanted != "auto" else next(iter(candidates))
        why = f"family={wanted}" if wanted != "auto" else "the only family fitted (PLS off)"
        reason = f"{name.upper()} ({why})"
    else:
        ratio = float(np.mean([scores["pls"][t] / max(scores["cnn"][t], 1e-12) for t in protocol.targets]))
        name = "pls" if ratio < 1 else "cnn"
        versus = ", ".join(f"{t} CNN {scores['cnn'][t]:.3f} / PLS {scores['pls'][t]:.3f}" for t in protocol.targets)
        reason = f"{name.upper()}: lower {what} ({versus}; PLS/CNN ratio {ratio:.3f})"
    if fitted.cnn_failure:
        reason = f"PLS: {fitted.cnn_failure}"
    reason += "; " + ", ".join(f"{t} {what} {scores[name][t]:.3g} vs mean predictor {mean_rmsep[t]:.3g}"
                                for t in protocol.targets)
    log.info("deploying %s", reason)
    return FamilyChoice(candidates[name], reason, scores, predictions[name], chosen_on, mean_rmsep,
                        mean_predicted if protocol.cross_validated else None)


def _choosing_predictions(candidates: dict[str, Candidate], protocol: Protocol,
                          seed: int) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Each candidate's predictions of the choosing spectra, their reference values, and the mean predictor's
    (the training mean; out of fold: the mean of the other folds)."""
    y_train = protocol.y(protocol.train)
    if not protocol.cross_validated:
        y_val = protocol.y(protocol.validation)
        return ({name: c.predict(protocol.validation.X) for name, c in candidates.items()}, y_val,
                np.broadcast_to(y_train.mean(axis=0), y_val.shape))
    X = protocol.train.X
    predictions = {name: cross_validated_predictions(c.refit, X, y_train, CALIBRATION_FOLDS, seed)[1]
                   for name, c in candidates.items()}
    _, mean_predicted = cross_validated_predictions(_mean_refit, X, y_train, CALIBRATION_FOLDS, seed)
    return predictions, y_train, mean_predicted


def _mean_refit(_X: np.ndarray, Y: np.ndarray):
    """The model without skill, as a refit: it predicts the mean of the rows it was given."""
    mean = np.asarray(Y, dtype=np.float64).mean(axis=0)
    return lambda X_new: np.tile(mean, (len(X_new), 1))
