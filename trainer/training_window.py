"""Which lab pairs a retrain trains on, and how much the recent ones weigh: a setting the time-forward evaluation
chooses at each retrain, not one fixed by hand (the adaptive soft sensor's moving window and forgetting).

Options (plant pairs in lab-time order; the base calibration data is always kept):

* ``all``: every pair so far;
* ``recent-N``: only the newest N pairs: older plant pairs are forgotten (moving-window PLS);
* ``recent-N-xW``: every pair, the newest N counted W times (recency weights by replication, so the PLS fit is the
  plain one; cross-validation for the LV count reads each spectrum once).

``choose_window`` picks among them with data available at the time only: each option is fitted on the training
pairs minus their newest ``holdout`` ones and scored on those (time-forward); the retrain's own held-out pairs, which
the gate judges on, are never seen.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from nirstream.core.chemometrics.figures_of_merit import rmse

DEFAULT_WINDOWS = ("all", "recent-40", "recent-40-x3")


@dataclass(frozen=True)
class TrainingWindow:
    name: str
    recent: int | None = None  # the newest pairs this option is about (None: all)
    weight: int = 1  # recent-N-xW: how often the newest N count; 1: the older ones are forgotten instead

    @classmethod
    def parse(cls, name: str) -> TrainingWindow:
        if name == "all":
            return cls(name)
        match = re.fullmatch(r"recent-(\d+)(?:-x(\d+))?", name)
        if not match or int(match[1]) < 1 or (match[2] is not None and int(match[2]) < 2):
            raise ValueError(f"training window {name!r}: use all, recent-N (N >= 1) or recent-N-xW (W >= 2)")
        return cls(name, int(match[1]), int(match[2]) if match[2] else 1)

    def rows(self, pairs: np.ndarray) -> np.ndarray:
        """The rows to fit on (with repeats for weights) from plant pair rows in lab-time order."""
        pairs = np.asarray(pairs)
        if self.recent is None:
            return pairs
        newest = pairs[-self.recent:]
        if self.weight == 1:
            return newest
        return np.concatenate([pairs[:-self.recent], *([newest] * self.weight)])


@dataclass(frozen=True)
class WindowChoice:
    window: TrainingWindow
    reason: str
    scores: dict[str, float]  # option -> RMSE on the newest training pairs (time-forward), empty if not scored


Fit = Callable[[np.ndarray], Callable[[np.ndarray], np.ndarray]]  # rows -> predict(rows) -> values


def choose_window(options: Sequence[TrainingWindow], pairs: np.ndarray, reference: np.ndarray, fit: Fit,
                  holdout: int) -> WindowChoice:
    """The option whose model, fitted without the newest ``holdout`` of ``pairs``, predicts them best; the first
    option (by convention ``all``) when there are too few pairs to score (fewer than two holdouts) or on a tie.
    ``fit(rows)`` fits a model on those plant rows (plus the base data) and returns its predict function."""
    pairs = np.asarray(pairs)
    if len(options) == 1 or len(pairs) < 2 * holdout:
        return WindowChoice(options[0], f"{len(pairs)} training pairs: too few to choose a window by "
                                        f"the newest {holdout} (needs {2 * holdout})" if len(options) > 1 else "the only option", {})
    older, newest = pairs[:-holdout], pairs[-holdout:]
    scores = {w.name: rmse(fit(w.rows(older))(newest), reference[newest]) for w in options}
    best = min(options, key=lambda w: scores[w.name])  # min keeps the first of equals
    return WindowChoice(best, f"lowest RMSE on the newest {holdout} training pairs ({scores[best.name]:.4g})", scores)
