"""The applicability domain's statistics and flags, NumPy only: T² and Q of a batch against the PCA and limits
``chemometrics.domain.ApplicabilityDomain`` fitted (the rules are described there), rebuilt from its state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

FLAG_OK, FLAG_WARNING, FLAG_OUTLIER = "ok", "warning", "outlier"
NOMINAL_RATES = {FLAG_WARNING: 0.05, FLAG_OUTLIER: 0.01}  # joint false-alarm rates of the flags on unseen spectra


def pca_statistics(X, mean: np.ndarray, components: np.ndarray, score_variance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(Hotelling's T², Q) per spectrum of ``X`` under a PCA: scores in its plane, and the residual off it."""
    centered = np.asarray(X, dtype=np.float64) - mean
    scores = centered @ components.T
    t2 = np.sum(scores**2 / score_variance, axis=1)
    residual = centered - scores @ components
    return t2, np.einsum("ij,ij->i", residual, residual)


@dataclass(frozen=True)
class DomainStatistics:
    """The fitted PCA and limits, under ``ApplicabilityDomain``'s fitted attributes' names."""

    mean_: np.ndarray
    components_: np.ndarray
    score_variance_: np.ndarray
    limits_: dict[str, float]
    n_samples_: int
    explained_variance: float

    @classmethod
    def from_state(cls, scalars: dict[str, Any], arrays: dict[str, np.ndarray]) -> DomainStatistics:
        """What ``ApplicabilityDomain.state`` wrote."""
        return cls(mean_=np.asarray(arrays["mean"], dtype=np.float64),
                   components_=np.asarray(arrays["components"], dtype=np.float64),
                   score_variance_=np.asarray(arrays["score_variance"], dtype=np.float64),
                   limits_={key: float(value) for key, value in scalars["limits"].items()},
                   n_samples_=int(scalars["n_samples"]), explained_variance=scalars["explained_variance"])

    @property
    def n_features_in_(self) -> int:
        return self.mean_.size

    def statistics(self, X) -> tuple[np.ndarray, np.ndarray]:
        """(T², Q) per spectrum, for a whole batch at once."""
        return pca_statistics(X, self.mean_, self.components_, self.score_variance_)

    def flags(self, t2: np.ndarray, q: np.ndarray) -> np.ndarray:
        """'ok', 'warning' (beyond a warning limit: 5 % of in-domain spectra) or 'outlier' (beyond an outlier limit:
        1 %) per spectrum. The keys ``t2_95``/``q_95`` hold the warning limits, ``t2_99``/``q_99`` the outlier limits."""
        lim = self.limits_
        outlier = (t2 > lim["t2_99"]) | (q > lim["q_99"])
        warning = (t2 > lim["t2_95"]) | (q > lim["q_95"])
        return np.where(outlier, FLAG_OUTLIER, np.where(warning, FLAG_WARNING, FLAG_OK))
