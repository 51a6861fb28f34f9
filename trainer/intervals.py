"""Prediction intervals by split-conformal calibration on the validation data (crepes).

For each target the absolute validation residuals |y - ŷ| give the half-width h such that
``ŷ ± h`` covers the lab value with probability ``coverage`` for a new exchangeable sample
(Vovk et al.; crepes' ``ConformalRegressor`` computes the finite-sample quantile). The
test set never calibrates anything: its empirical coverage is reported as a check.
Caveat, stated in the report: the same validation data also stopped training early, which
can make the intervals slightly narrow; a separate calibration split would remove that.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np

from nirstream.core.artifacts.bundle import PredictionIntervals

log = logging.getLogger(__name__)

DEFAULT_COVERAGE = 0.9
CALIBRATION_FOLDS = 5
# A split-conformal interval's coverage, over draws of the calibration set, is Beta-distributed with a spread of about
# sqrt(c(1-c)/n): with 10 validation spectra a nominal 90 % covers anywhere from ~75 % to 100 %, with 30 within about
# +-5 %. Below this many validation spectra ``auto`` pools them with out-of-fold residuals of the training split.
MIN_VALIDATION_CALIBRATION = 30
METHODS = {
    "validation": "split-conformal (crepes ConformalRegressor) on the validation split's absolute residuals",
    "training": f"cross-conformal (crepes ConformalRegressor) on {CALIBRATION_FOLDS}-fold out-of-fold residuals of the "
                "training split, each fold's model refitted with the deployed settings",
    "pooled": f"conformal (crepes ConformalRegressor) on the validation split's absolute residuals pooled with "
              f"{CALIBRATION_FOLDS}-fold out-of-fold residuals of the training split (too few validation spectra alone)",
}


def calibrate_intervals(y_true: np.ndarray, y_pred: np.ndarray, targets: tuple[str, ...],
                        coverage: float = DEFAULT_COVERAGE, source: str = "validation") -> tuple[PredictionIntervals | None, str]:
    """Half-widths per target from calibration data (n, k); None and the reason when the data are too few.

    ``source``: ``"validation"`` (split-conformal) or ``"training"`` (out-of-fold residuals, see
    ``cross_validated_predictions``)."""
    from crepes import ConformalRegressor

    y_true, y_pred = np.reshape(y_true, (len(y_true), -1)), np.reshape(y_pred, (len(y_pred), -1))
    half_widths = {}
    for j, target in enumerate(targets):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "too few calibration examples": handled below
            conformal = ConformalRegressor().fit(residuals=y_true[:, j] - y_pred[:, j])
            low, high = conformal.predict_int(np.zeros(1), confidence=coverage)[0]
        if not np.isfinite(high - low):
            needed = int(np.ceil(coverage / (1 - coverage)))
            reason = (f"no intervals: {len(y_true)} {source} spectra are too few for {coverage:.0%} coverage "
                      f"(at least {needed} needed)")
            log.warning(reason)
            return None, reason
        half_widths[target] = float((high - low) / 2)
    intervals = PredictionIntervals(coverage=coverage, half_width=half_widths, method=METHODS[source], n_calibration=len(y_true))
    where = {"validation": "validation spectra", "training": f"out-of-fold training spectra ({CALIBRATION_FOLDS} folds)",
             "pooled": f"validation and out-of-fold training spectra ({CALIBRATION_FOLDS} folds)"}[source]
    return intervals, f"{coverage:.0%} intervals calibrated on {len(y_true)} {where}"


def cross_validated_predictions(refit, X: np.ndarray, Y: np.ndarray, folds: int = CALIBRATION_FOLDS,
                                seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold predictions of the training spectra: ``refit(X_rest, Y_rest)`` returns a predict function for the
    held-out fold. Costs ``folds`` refits; the residuals are exchangeable with new data like the training set's,
    which a narrow validation split's are not."""
    from sklearn.model_selection import KFold

    predicted = np.empty_like(np.asarray(Y, dtype=np.float64))
    for kept, held in KFold(n_splits=folds, shuffle=True, random_state=seed).split(X):
        predicted[held] = refit(X[kept], Y[kept])(X[held])
    return np.asarray(Y, dtype=np.float64), predicted


def narrow_targets(y_train: np.ndarray, y_other: np.ndarray, targets: tuple[str, ...], minimum_ratio: float = 0.5) -> list[str]:
    """Targets whose values in ``y_other`` spread less than ``minimum_ratio`` of their training spread, as 'name NN%'."""
    y_train, y_other = np.reshape(y_train, (len(y_train), -1)), np.reshape(y_other, (len(y_other), -1))
    ratios = y_other.std(axis=0) / np.maximum(y_train.std(axis=0), 1e-12)
    return [f"{t} {r:.0%}" for t, r in zip(targets, ratios, strict=True) if r < minimum_ratio]


def representativeness_warning(y_train: np.ndarray, y_calibration: np.ndarray, targets: tuple[str, ...],
                               minimum_ratio: float = 0.5) -> str | None:
    """A warning when the calibration (validation) targets spread much less than the training targets: residuals on
    such a narrow set are smaller than on data like the training set, so the intervals will likely under-cover."""
    narrow = narrow_targets(y_train, y_calibration, targets, minimum_ratio)
    if not narrow:
        return None
    return (f"the validation targets spread much less than the training targets ({', '.join(narrow)} of the training "
            "standard deviation): intervals calibrated on them are likely too narrow for data like the training set "
            "(--calibration cross-validation calibrates on the training split instead)")


def empirical_coverage(y_true: np.ndarray, y_pred: np.ndarray, intervals: PredictionIntervals,
                       targets: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """Per target: the share of samples whose reference lies inside ``ŷ ± h``, and the interval width 2h."""
    y_true, y_pred = np.reshape(y_true, (len(y_true), -1)), np.reshape(y_pred, (len(y_pred), -1))
    return {target: {"coverage": float(np.mean(np.abs(y_true[:, j] - y_pred[:, j]) <= intervals.half_width[target])),
                     "width": 2 * intervals.half_width[target], "n": int(len(y_true))}
            for j, target in enumerate(targets)}
