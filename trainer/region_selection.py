"""The spectral region a model sees, chosen from the training data: moving windows scored by PLS cross-validation.

Interval PLS (Nørgaard et al. 2000, *Appl. Spectrosc.* 54:413) in its moving-window form: the grid is cut into
``N_INTERVALS`` equal runs of channels and every contiguous run of at least ``MIN_INTERVALS`` of them is a candidate
window (21 candidates: a bounded cost, one PLS cross-validation each). A candidate's score is the one the PLS
pretreatments are compared by: RMSECV at its CV-min latent variables (``REGION_CV_FOLDS``-fold on the training split,
the variant's preprocessing refitted inside every fold), mean over targets in training standard deviations.

Rule: among the windows whose score lies within one standard error of the lowest, the widest is kept (equal widths:
the lower score). The lowest of 21 RMSECVs is optimistic, and the whole range is the default a chemometrician departs
from only when the data ask for it; so a file with dead or noisy edges loses them, and a clean file keeps (nearly) all
its channels. Nothing here is tuned to a data set: the intervals are fractions of whatever grid the file has.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nirstream.trainer.pls import MAX_LV, cross_validate_lvs

N_INTERVALS = 8
MIN_INTERVALS = 3
MIN_INTERVAL_CHANNELS = 4  # fewer channels per interval: the grid is too short to cut, the whole range is kept
REGION_CV_FOLDS = 10


@dataclass
class RegionCandidate:
    first_nm: float
    last_nm: float
    start: int  # channels start:stop of the input grid
    stop: int
    score: float  # mean over targets of RMSECV (CV-min LVs) / training standard deviation
    standard_error: float  # the same for the RMSECV's standard error over the folds
    latent_variables: dict[str, int]

    def as_report(self) -> dict:
        return {"first_nm": self.first_nm, "last_nm": self.last_nm, "channels": self.stop - self.start,
                "score": round(self.score, 5), "standard_error": round(self.standard_error, 5),
                "latent_variables": self.latent_variables}


def candidate_windows(n_channels: int) -> list[tuple[int, int]]:
    """(start, stop) channel runs: contiguous runs of at least ``MIN_INTERVALS`` of ``N_INTERVALS`` equal intervals."""
    if n_channels < N_INTERVALS * MIN_INTERVAL_CHANNELS:
        return [(0, n_channels)]
    edges = np.linspace(0, n_channels, N_INTERVALS + 1).round().astype(int)
    return [(int(edges[i]), int(edges[j])) for i in range(N_INTERVALS)
            for j in range(i + MIN_INTERVALS, N_INTERVALS + 1)]


def score_windows(X: np.ndarray, Y: np.ndarray, wavelengths: np.ndarray, targets: tuple[str, ...], variant: str,
                  random_state: int = 0) -> list[RegionCandidate]:
    """Every candidate window's cross-validated score on the training spectra ``X`` (input grid) and targets ``Y``."""
    scale = Y.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    scored = []
    for start, stop in candidate_windows(X.shape[1]):
        rmsecv, error, lvs = [], [], {}
        for j, target in enumerate(targets):
            selection = cross_validate_lvs(X[:, start:stop], Y[:, j], variant=variant, max_lv=MAX_LV,
                                           n_splits=REGION_CV_FOLDS, n_repeats=1, random_state=random_state)
            best = int(np.argmin(selection.rmse))
            rmsecv.append(selection.rmse[best] / scale[j])
            error.append(selection.standard_error[best] / scale[j])
            lvs[target] = int(selection.lvs[best])
        scored.append(RegionCandidate(float(wavelengths[start]), float(wavelengths[stop - 1]), start, stop,
                                      float(np.mean(rmsecv)), float(np.mean(error)), lvs))
    return scored


def chosen_window(scored: list[RegionCandidate]) -> RegionCandidate:
    """The widest candidate within one standard error of the lowest score (equal widths: the lower score)."""
    best = min(scored, key=lambda c: c.score)
    near = [c for c in scored if c.score <= best.score + best.standard_error]
    return max(near, key=lambda c: (c.stop - c.start, -c.score))


REGION_RULE = (f"moving-window interval PLS: the grid cut into {N_INTERVALS} equal intervals, every contiguous run of "
               f"at least {MIN_INTERVALS} a candidate; each scored by {REGION_CV_FOLDS}-fold RMSECV on the training "
               "split (CV-min LVs, mean over targets in training standard deviations); the widest window within one "
               "standard error of the lowest score is kept")
