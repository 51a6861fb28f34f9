"""Regression figures a chemometrician expects next to every model: RMSEP, bias, SEP, R², slope."""

from __future__ import annotations

import numpy as np


def rmse(predicted, reference, axis: int | None = None):
    """Root mean squared difference; per column with ``axis=0`` (e.g. one column per PLS LV count).

    The one RMSE in nirstream: RMSEP (test), RMSECV (cross-validation), online RMSEP (lab pairs)."""
    difference = np.asarray(predicted, dtype=np.float64) - np.asarray(reference, dtype=np.float64)
    if axis is None:
        return float(np.sqrt(np.mean(np.square(difference))))
    return np.sqrt(np.mean(np.square(difference), axis=axis))


def regression_metrics(y_true, y_pred) -> dict[str, float]:
    """RMSEP, bias, SEP, R² and slope of predicted on reference, as plain floats.

    * ``rmsep`` = sqrt(mean((pred - ref)²))
    * ``bias``  = mean(pred - ref)
    * ``sep``   = bias-corrected standard error, std of the residuals with n - 1 (so
      ``rmsep² ≈ bias² + sep² * (n - 1) / n``)
    * ``r2``    = 1 - SS_res / SS_tot (coefficient of determination, can be negative)
    * ``slope`` = least-squares slope of predicted against reference (1 is ideal)
    """
    y_true = np.asarray(y_true, dtype=np.float64).ravel()
    y_pred = np.asarray(y_pred, dtype=np.float64).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has {y_true.size} values but y_pred has {y_pred.size}")
    if y_true.size < 2:
        raise ValueError("need at least two samples")
    residuals = y_pred - y_true
    ss_tot = float(np.sum((y_true - y_true.mean()) ** 2))
    ref_centered = y_true - y_true.mean()
    return {
        "n": int(y_true.size),
        "rmsep": rmse(y_pred, y_true),
        "bias": float(residuals.mean()),
        "sep": float(residuals.std(ddof=1)),
        "r2": float(1.0 - np.sum(residuals**2) / ss_tot) if ss_tot > 0 else float("nan"),
        "slope": float(ref_centered @ (y_pred - y_pred.mean()) / ss_tot) if ss_tot > 0 else float("nan"),
    }


BOOTSTRAP_RESAMPLES = 2000


def _rms_statistic(errors, axis=-1):
    return np.sqrt(np.mean(errors**2, axis=axis))


def _rmse_statistic(reference, predicted, axis=-1):
    return _rms_statistic(predicted - reference, axis)


def _rmse_difference_statistic(reference, predicted_a, predicted_b, axis=-1):
    return _rmse_statistic(reference, predicted_a, axis) - _rmse_statistic(reference, predicted_b, axis)


def rmsep_interval(y_true, y_pred, confidence: float = 0.95, seed: int = 0) -> dict[str, float]:
    """RMSEP with a percentile bootstrap interval over the test samples (scipy.stats.bootstrap, paired resampling)."""
    from scipy.stats import bootstrap

    y_true, y_pred = np.asarray(y_true, dtype=np.float64).ravel(), np.asarray(y_pred, dtype=np.float64).ravel()
    result = bootstrap((y_true, y_pred), _rmse_statistic, paired=True, vectorized=True, n_resamples=BOOTSTRAP_RESAMPLES,
                       confidence_level=confidence, method="percentile", random_state=seed)
    return {"rmsep": rmse(y_pred, y_true), "low": float(result.confidence_interval.low),
            "high": float(result.confidence_interval.high), "confidence": confidence}


def paired_rmsep_difference(y_true, predicted_a, predicted_b, confidence: float = 0.95, seed: int = 0) -> dict[str, float]:
    """RMSEP(a) - RMSEP(b) on the same samples, with a paired percentile bootstrap interval.

    The same resampled samples feed both models, so what the two have in common (hard samples, lab noise)
    cancels. "a beats b" is claimed only when ``high < 0``; an interval that contains 0 is "no difference shown".
    """
    from scipy.stats import bootstrap

    arrays = tuple(np.asarray(a, dtype=np.float64).ravel() for a in (y_true, predicted_a, predicted_b))
    result = bootstrap(arrays, _rmse_difference_statistic, paired=True, vectorized=True, n_resamples=BOOTSTRAP_RESAMPLES,
                       confidence_level=confidence, method="percentile", random_state=seed)
    low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    verdict = "a better" if high < 0 else "b better" if low > 0 else "no difference shown"
    return {"difference": float(_rmse_difference_statistic(*arrays)), "low": low, "high": high,
            "confidence": confidence, "verdict": verdict}


def figures_per_target(y_true, y_pred, targets, seed: int = 0) -> dict[str, dict]:
    """``regression_metrics`` and the RMSEP's bootstrap interval (``rmsep_ci95``) for each column of (n, k) arrays."""
    y_true, y_pred = np.reshape(y_true, (len(y_true), -1)), np.reshape(y_pred, (len(y_pred), -1))
    return {t: {**regression_metrics(y_true[:, j], y_pred[:, j]), "rmsep_ci95": rmsep_interval(y_true[:, j], y_pred[:, j], seed=seed)}
            for j, t in enumerate(targets)}


def unpaired_rmsep_difference(errors_a, errors_b, confidence: float = 0.95, seed: int = 0) -> dict[str, float]:
    """RMSEP(a) - RMSEP(b) from the errors (prediction - reference) of two different sets of samples, with a
    percentile bootstrap interval resampling each set on its own. Weaker than the paired comparison (what the
    samples share does not cancel); for models that predicted different samples, e.g. one after the other."""
    from scipy.stats import bootstrap

    a, b = (np.asarray(e, dtype=np.float64).ravel() for e in (errors_a, errors_b))

    def difference(x, y, axis=-1):
        return _rms_statistic(x, axis) - _rms_statistic(y, axis)

    result = bootstrap((a, b), difference, paired=False, vectorized=True, n_resamples=BOOTSTRAP_RESAMPLES,
                       confidence_level=confidence, method="percentile", random_state=seed)
    low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    verdict = "a better" if high < 0 else "b better" if low > 0 else "no difference shown"
    return {"difference": float(difference(a, b)), "low": low, "high": high, "confidence": confidence,
            "verdict": verdict}
