"""Applicability domain: is a spectrum like the ones the model was trained on?

PCA of the preprocessed training spectra gives two statistics per spectrum:
Hotelling's T² (how unusual its scores are inside the model plane) and Q / SPE (how much of it
the plane cannot describe).

The limits must hold for spectra the PCA has *not* seen: a training spectrum's own Q is shrunk by the fit (with a
few dozen spectra and ten components almost to zero), so limits learnt from it call every new spectrum an outlier.
Rule (``cv`` folds, the default): the statistics of each training spectrum are computed out of fold, by a PCA fitted
without it (K-fold: what a new spectrum of the same kind would show), and each
limit is Box's scaled chi-square g·χ²(h) moment-matched to those out-of-fold values (Box 1954; Nomikos & MacGregor
1995, the usual Q limit). For T² the limit is the larger of that and the F-based limit for a *new* observation,
k(n−1)(n+1)/(n(n−k))·F(k, n−k) (Tracy, Young & Mason 1992). A spectrum is flagged when T² *or* Q exceeds its limit,
so each statistic's level is Šidák-corrected to make the joint false-alarm rate nominal: 5 % warning, 1 % outlier.
``cv=None`` keeps the first rule (limits from the fitted spectra, each statistic at 95 % / 99 %); bundles keep the
limits they stored.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numbers import Integral, Real

from sklearn.base import BaseEstimator, _fit_context
from sklearn.model_selection import KFold
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted, validate_data

from nirstream.core.chemometrics.fitted.domain import (FLAG_OK, FLAG_OUTLIER, FLAG_WARNING, NOMINAL_RATES, DomainStatistics,
                                                       pca_statistics)

__all__ = ["FLAG_OK", "FLAG_OUTLIER", "FLAG_WARNING", "NOMINAL_RATES", "ApplicabilityDomain"]
CHECKS = 2  # T² and Q: each flags on its own


def per_statistic_confidence(joint_rate: float, checks: int = CHECKS) -> float:
    """Šidák: each of ``checks`` independent tests at this confidence flags ``joint_rate`` of in-domain spectra."""
    return (1.0 - joint_rate) ** (1.0 / checks)


def hotelling_t2_limit(n_components: int, n_samples: int, confidence: float) -> float:
    from scipy import stats  # fitting only: the worker's cold start skips scipy.stats (~1 s)

    k, n = n_components, n_samples
    return float(k * (n - 1) * (n + 1) / (n * (n - k)) * stats.f.ppf(confidence, k, n - k))


def q_limit(training_q: np.ndarray, confidence: float) -> float:
    """Box's g·χ²(h) with the mean and variance of ``training_q`` (any non-negative statistic), at ``confidence``."""
    mean, var = float(training_q.mean()), float(training_q.var(ddof=1))
    if var <= 0:
        return mean
    from scipy import stats  # fitting only, as above

    g, h = var / (2 * mean), 2 * mean**2 / var
    return float(g * stats.chi2.ppf(confidence, h))


class ApplicabilityDomain(BaseEstimator):
    """PCA-based T² and Q statistics with 95 %/99 % limits.

    Parameters
    ----------
    n_components : int or None
        Principal components; when None, the fewest explaining ``explained_variance`` (at most 10).
    explained_variance : float, default=0.99
    cv : int or None, default=10
        Folds for the out-of-fold statistics the limits are learnt from (leave-one-out when fewer spectra);
        None learns them from the fitted spectra themselves (the first rule, see the module's text).

    Attributes
    ----------
    mean_, components_ (k, p), score_variance_ (k,), n_samples_, limits_ (dict)
    """

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left"), None],
        "explained_variance": [Interval(Real, 0, 1, closed="right")],
        "cv": [Interval(Integral, 2, None, closed="left"), None],
    }

    def __init__(self, n_components: int | None = None, explained_variance: float = 0.99, cv: int | None = 10):
        self.n_components = n_components
        self.explained_variance = explained_variance
        self.cv = cv

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        X = validate_data(self, X, dtype=np.float64)
        n = X.shape[0]
        if n < 5:
            raise ValueError(f"need at least 5 training spectra for an applicability domain, got n_samples = {n}")
        self.mean_ = X.mean(axis=0)
        _, singular, vt = np.linalg.svd(X - self.mean_, full_matrices=False)
        variance = singular**2 / (n - 1)
        k = self.n_components
        if k is None:
            cumulative = np.cumsum(variance) / variance.sum()
            k = min(int(np.searchsorted(cumulative, self.explained_variance) + 1), 10, n - 2)
        self.components_ = vt[:k]
        self.score_variance_ = variance[:k]
        self.n_samples_ = n
        if self.cv is None:
            t2, q = pca_statistics(X, self.mean_, self.components_, self.score_variance_)
            self.limits_ = {"t2_95": hotelling_t2_limit(k, n, 0.95), "t2_99": hotelling_t2_limit(k, n, 0.99),
                            "q_95": q_limit(q, 0.95), "q_99": q_limit(q, 0.99)}
            return self
        t2, q = self._out_of_fold_statistics(X, k)
        self.limits_ = {}
        for key, joint_rate in (("95", NOMINAL_RATES[FLAG_WARNING]), ("99", NOMINAL_RATES[FLAG_OUTLIER])):
            confidence = per_statistic_confidence(joint_rate)
            self.limits_[f"t2_{key}"] = max(hotelling_t2_limit(k, n, confidence), q_limit(t2, confidence))
            self.limits_[f"q_{key}"] = q_limit(q, confidence)
        return self

    def _out_of_fold_statistics(self, X: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(T², Q) of every training spectrum under a ``k``-component PCA fitted without its fold."""
        n = X.shape[0]
        t2, q = np.empty(n), np.empty(n)
        for fit_rows, held_rows in KFold(min(self.cv, n), shuffle=True, random_state=0).split(X):
            mean = X[fit_rows].mean(axis=0)
            _, singular, vt = np.linalg.svd(X[fit_rows] - mean, full_matrices=False)
            kept = min(k, fit_rows.size - 1)
            variance = np.maximum(singular[:kept] ** 2 / (fit_rows.size - 1), np.finfo(float).tiny)
            t2[held_rows], q[held_rows] = pca_statistics(X[held_rows], mean, vt[:kept], variance)
        return t2, q

    def fitted(self) -> DomainStatistics:
        """The fitted statistics and limits as the worker holds them (NumPy only)."""
        return DomainStatistics.from_state(*self.state())

    def statistics(self, X) -> tuple[np.ndarray, np.ndarray]:
        """(T², Q) per spectrum, for a whole batch at once."""
        return self.fitted().statistics(X)

    def flags(self, t2: np.ndarray, q: np.ndarray) -> np.ndarray:
        """'ok', 'warning' or 'outlier' per spectrum; see ``DomainStatistics.flags``."""
        return self.fitted().flags(t2, q)

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        check_is_fitted(self, "components_")
        scalars = {"n_samples": self.n_samples_, "explained_variance": self.explained_variance, "limits": self.limits_}
        arrays = {"mean": self.mean_, "components": self.components_, "score_variance": self.score_variance_}
        return scalars, arrays
