"""Stage 3: the deployed model's prediction intervals."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from nirstream.core.artifacts.bundle import PredictionIntervals
from nirstream.trainer.data_splits import Protocol
from nirstream.trainer.intervals import (CALIBRATION_FOLDS, MIN_VALIDATION_CALIBRATION, calibrate_intervals,
                                         cross_validated_predictions, representativeness_warning)
from nirstream.trainer.stages.fitting import Candidate
from nirstream.trainer.train_settings import TrainSettings

log = logging.getLogger(__name__)


@dataclass
class IntervalCalibration:
    intervals: PredictionIntervals | None
    note: str  # the report's note on them
    calibration: str  # where they were calibrated: "validation" or "cross-validation"


def calibrate_deployed(settings: TrainSettings, deployed: Candidate, protocol: Protocol,
                       validation_predicted: np.ndarray) -> IntervalCalibration:
    """Calibrate on the validation residuals, or (``cross-validation``, or ``auto`` when validation spans much less
    than training, or always under the small-set rule) on out-of-fold residuals of the training split, or (``auto``
    with fewer than ``MIN_VALIDATION_CALIBRATION`` validation spectra) on both pooled."""
    targets, y_train, y_val = protocol.targets, protocol.y(protocol.train), protocol.y(protocol.validation)
    if protocol.cross_validated:  # small-set rule: the family's out-of-fold predictions calibrate (cross-conformal)
        intervals, note = calibrate_intervals(y_train, validation_predicted, targets, settings.coverage, source="training")
        if settings.calibration == "validation":
            note += " (small set: no validation split to calibrate on)"
        return IntervalCalibration(intervals, note, "cross-validation")
    narrow = representativeness_warning(y_train, y_val, targets)
    few = len(y_val) < MIN_VALIDATION_CALIBRATION
    calibration = (settings.calibration if settings.calibration != "auto" else
                   "cross-validation" if narrow else "pooled" if few else "validation")
    if calibration == "validation":
        intervals, note = calibrate_intervals(y_val, validation_predicted, targets, settings.coverage)
        if narrow and intervals:
            log.warning(narrow)
            note += f"; WARNING: {narrow}"
        return IntervalCalibration(intervals, note, calibration)
    if narrow and settings.calibration == "auto":
        log.warning("%s: calibrating on cross-validated training residuals instead", narrow)
    if calibration == "pooled":
        log.info("%d validation spectra are few for a %.0f%% interval: pooled with %d-fold cross-validated training "
                 "residuals", len(y_val), 100 * settings.coverage, CALIBRATION_FOLDS)
    else:
        log.info("calibrating intervals on %d-fold cross-validated residuals of the training split", CALIBRATION_FOLDS)
    y_oof, predicted_oof = cross_validated_predictions(deployed.refit, protocol.train.X, y_train, CALIBRATION_FOLDS,
                                                       settings.seed)
    if calibration == "pooled":
        intervals, note = calibrate_intervals(np.vstack([y_val, y_oof]),
                                              np.vstack([np.reshape(validation_predicted, y_val.shape), predicted_oof]),
                                              targets, settings.coverage, source="pooled")
        return IntervalCalibration(intervals, note, calibration)
    intervals, note = calibrate_intervals(y_oof, predicted_oof, targets, settings.coverage, source="training")
    if narrow and settings.calibration == "auto":
        note += f" (auto: {narrow})"
    return IntervalCalibration(intervals, note, calibration)
