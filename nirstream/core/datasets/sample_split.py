"""Split samples into train / validation / test when the user's file names no split.

Kennard–Stone ordering (Kennard & Stone 1969) over the samples' principal-component scores,
dealt out like a duplex design: the two most distant samples go to training, then each
next sample in Kennard–Stone order goes to the split that is furthest behind its share.
Every split therefore spans the spectral space (a plain Kennard–Stone calibration set would
take all the extremes and leave the test set only easy, interior samples: an optimistic
RMSEP). Deterministic: the same file always gives the same split, so no seed is needed.
Replicate spectra of one sample (same id) are kept together in one split.
"""

from __future__ import annotations

import numpy as np

SPLIT_NAMES = ("train", "validation", "test")
DEFAULT_FRACTIONS = (0.6, 0.2, 0.2)
MIN_SAMPLES = {"train": 10, "validation": 5, "test": 5}


def kennard_stone_order(points: np.ndarray) -> np.ndarray:
    """Row indices in Kennard–Stone order: the two farthest apart, then each time the row farthest from all chosen.

    O(n²) time, O(n) memory (distances to the chosen set are updated one chosen row at a time).
    """
    points = np.asarray(points, dtype=np.float64)
    n = points.shape[0]
    if n < 2:
        return np.arange(n)
    squared_norms = np.einsum("ij,ij->i", points, points)
    # Start from (nearly always) the farthest pair: the row farthest from the mean, then the row farthest from
    # it. O(n) memory instead of the full distance matrix; the rest of the order is exact Kennard–Stone.
    first = int(np.argmax(np.sum((points - points.mean(axis=0)) ** 2, axis=1)))
    distance = squared_norms + squared_norms[first] - 2 * points @ points[first]
    second = int(np.argmax(distance))
    order = [first, second]
    nearest = np.minimum(distance, squared_norms + squared_norms[second] - 2 * points @ points[second])
    nearest[order] = -np.inf
    for _ in range(n - 2):
        chosen = int(np.argmax(nearest))
        order.append(chosen)
        nearest = np.minimum(nearest, squared_norms + squared_norms[chosen] - 2 * points @ points[chosen])
        nearest[chosen] = -np.inf
    return np.asarray(order)


def _scores(spectra: np.ndarray, max_components: int = 20, explained: float = 0.999) -> np.ndarray:
    """Principal-component scores covering ``explained`` of the variance (at most ``max_components``)."""
    centred = spectra - spectra.mean(axis=0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    share = np.cumsum(s**2) / max(np.sum(s**2), np.finfo(float).tiny)
    k = int(min(max_components, np.searchsorted(share, explained) + 1, s.size))
    return u[:, :k] * s[:k]


def kennard_stone_split(spectra: np.ndarray, groups: list[str] | None = None,
                        fractions: tuple[float, float, float] = DEFAULT_FRACTIONS) -> dict[str, np.ndarray]:
    """Row indices of train / validation / test (see the module's description).

    ``groups``: one id per row; rows with the same id (replicates) land in the same split.
    Raises ``ValueError`` when there are too few samples for a split of the minimum sizes.
    """
    spectra = np.asarray(spectra, dtype=np.float64)
    if len(fractions) != 3 or any(f <= 0 for f in fractions):
        raise ValueError(f"fractions must be three positive shares, got {fractions}")
    shares = np.asarray(fractions) / np.sum(fractions)
    groups = list(groups) if groups is not None else [str(i) for i in range(spectra.shape[0])]
    names, inverse = np.unique(np.asarray(groups, dtype=str), return_inverse=True)
    needed = sum(MIN_SAMPLES.values())
    if names.size < needed:
        raise ValueError(f"{names.size} samples are too few for an automatic train/validation/test split "
                         f"(need at least {needed}: {MIN_SAMPLES}); give a split column instead")
    means = np.vstack([spectra[inverse == g].mean(axis=0) for g in range(names.size)])
    counts = np.zeros(3)
    assigned = np.empty(names.size, dtype=int)
    for rank, group in enumerate(kennard_stone_order(_scores(means))):
        split = 0 if rank < 2 else int(np.argmax(shares * (rank + 1) - counts))
        assigned[group] = split
        counts[split] += 1
    return {name: np.flatnonzero(np.isin(inverse, np.flatnonzero(assigned == i))) for i, name in enumerate(SPLIT_NAMES)}
