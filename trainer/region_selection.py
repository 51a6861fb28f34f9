"""The spectral region a model sees, chosen from the training data: moving windows scored by PLS cross-validation.

Interval PLS (Nørgaard et al. 2000, *Appl. Spectrosc.* 54:413) in its moving-window form: the grid is cut into
``N_INTERVALS`` equal runs of channels and every contiguous run of at least ``MIN_INTERVALS`` of them is a candidate
window (21 candidates: a bounded cost, one PLS cross-validation each). A candidate's score is the one the PLS
pretreatments are compared by: RMSECV at its CV-min latent variables (``REGION_CV_FOLDS``-fold on the training split,
the variant's preprocessing refitted inside every fold), mean over targets in training standard deviations.

Rule: the whole range is the default a chemometrician departs from only when the data ask for it. Windows are
scored with the PLS variant that cross-validates best on the whole range (so a window is not preferred merely
because another pretreatment would use the whole range better), and a window replaces the whole range only when it
is better on the same folds: the mean paired difference of the fold scores (window - whole range) lies below 0 by
more than ``PAIRED_STANDARD_ERRORS`` of its standard errors. Among such windows the widest within one standard error
of the lowest score is kept (equal widths: the lower score). So a file with dead or noisy edges loses them, and a
clean file keeps its channels. Nothing here is tuned to a data set: the intervals are fractions of whatever grid the
file has.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nirstream.trainer.pls import MAX_LV, cross_validate_lvs

N_INTERVALS = 8
MIN_INTERVALS = 3
MIN_INTERVAL_CHANNELS = 4  # fewer channels per interval: the grid is too short to cut, the whole range is kept
REGION_CV_FOLDS = 10
PAIRED_STANDARD_ERRORS = 2.0  # ~95 %: the lowest of 21 scores is optimistic, so a window must win clearly


@dataclass
class RegionCandidate:
    first_nm: float
    last_nm: float
    start: int  # channels start:stop of the input grid
    stop: int
    score: float  # mean over targets of RMSECV (CV-min LVs) / training standard deviation
    standard_error: float  # the same for the RMSECV's standard error over the folds
    latent_variables: dict[str, int]
    fold_scores: np.ndarray | None = None  # per fold, the same units as score (same folds for every window)

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
        scored.append(_score(X, Y, wavelengths, targets, variant, random_state, scale, start, stop))
    return scored


def best_full_range_variant(X: np.ndarray, Y: np.ndarray, targets: tuple[str, ...], variants: tuple[str, ...],
                            random_state: int = 0) -> str:
    """The PLS variant with the lowest cross-validated score on every channel (training data only)."""
    scale = Y.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    wavelengths = np.arange(X.shape[1], dtype=float)
    scores = {v: _score(X, Y, wavelengths, targets, v, random_state, scale, 0, X.shape[1]).score for v in variants}
    return min(scores, key=scores.get)


def _score(X, Y, wavelengths, targets, variant, random_state, scale, start, stop) -> RegionCandidate:
    rmsecv, error, folds, lvs = [], [], [], {}
    for j, target in enumerate(targets):
        selection = cross_validate_lvs(X[:, start:stop], Y[:, j], variant=variant, max_lv=MAX_LV,
                                       n_splits=REGION_CV_FOLDS, n_repeats=1, random_state=random_state)
        best = int(np.argmin(selection.rmse))
        rmsecv.append(selection.rmse[best] / scale[j])
        error.append(selection.standard_error[best] / scale[j])
        folds.append(selection.fold_rmse[:, best] / scale[j])
        lvs[target] = int(selection.lvs[best])
    return RegionCandidate(float(wavelengths[start]), float(wavelengths[stop - 1]), start, stop, float(np.mean(rmsecv)),
                           float(np.mean(error)), lvs, np.mean(folds, axis=0))


def clearly_better_than_full(candidate: RegionCandidate, full: RegionCandidate) -> bool:
    """The window's fold scores lie below the whole range's on the same folds, beyond the paired standard errors."""
    difference = candidate.fold_scores - full.fold_scores
    standard_error = difference.std(ddof=1) / np.sqrt(len(difference)) if len(difference) > 1 else np.inf
    return bool(difference.mean() + PAIRED_STANDARD_ERRORS * standard_error < 0)


def chosen_window(scored: list[RegionCandidate]) -> RegionCandidate:
    """The whole range, unless some windows are clearly better on the same folds: then the widest of those within
    one standard error of the lowest score (equal widths: the lower score)."""
    full = max(scored, key=lambda c: c.stop - c.start)
    better = [c for c in scored if c is not full and clearly_better_than_full(c, full)]
    if not better:
        return full
    best = min(better, key=lambda c: c.score)
    near = [c for c in better if c.score <= best.score + best.standard_error]
    return max(near, key=lambda c: (c.stop - c.start, -c.score))


REGION_RULE = (f"moving-window interval PLS: the grid cut into {N_INTERVALS} equal intervals, every contiguous run of "
               f"at least {MIN_INTERVALS} a candidate; each scored by {REGION_CV_FOLDS}-fold RMSECV on the training "
               "split (CV-min LVs, mean over targets in training standard deviations) with the PLS variant that "
               "cross-validates best on every channel; every channel is kept unless windows beat it on the same folds "
               f"by more than {PAIRED_STANDARD_ERRORS:g} paired standard errors, then the widest of those within one "
               "standard error of the lowest score")
