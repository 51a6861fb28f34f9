"""The time-forward gate: a candidate is judged on the newest lab pairs it did not train on, against the
champion's predictions of the same spectra, with paired bootstrap intervals.

The rule (each interval at ``GatePolicy.confidence``; differences are candidate - champion RMSEP):
1. better on the newest pairs: the interval of the difference lies below 0; or, when the champion is stale
   (its bias on those pairs is significant by the retrain policy's test) and the candidate's is not, a tie
   (interval containing 0, difference below 0) also passes: the candidate removes a bias the champion is known
   to carry, which the pairs are too few to show as an RMSEP difference;
2. and not worse on the base validation split beyond its interval (the interval's low end is not above 0).
Otherwise the candidate is rejected, with the figures that decided it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from nirstream.core.chemometrics.figures_of_merit import paired_rmsep_difference, rmse
from nirstream.trainer.retrain_policy import bias_test
from nirstream.trainer.service_settings import GatePolicy, RetrainPolicy


@dataclass(frozen=True)
class GateVerdict:
    passed: bool
    reason: str
    newest_pairs: int
    candidate_rmsep: float
    champion_rmsep: float
    difference: dict[str, Any]
    champion_stale: bool
    base_validation_difference: dict[str, Any] | None

    def as_record(self) -> dict[str, Any]:
        return asdict(self)


def judge(reference: np.ndarray, candidate: np.ndarray, champion: np.ndarray, gate: GatePolicy,
          retrain: RetrainPolicy, base_validation: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
          seed: int = 0) -> GateVerdict:
    """``reference``, ``candidate``, ``champion``: lab values and both models' predictions of the newest held-out
    pairs (one target); ``base_validation``: (reference, candidate, champion) on the base validation split."""
    reference, candidate, champion = (np.asarray(a, dtype=np.float64).ravel() for a in (reference, candidate, champion))
    difference = paired_rmsep_difference(reference, candidate, champion, confidence=gate.confidence, seed=seed)
    stale = bias_test("champion", "", champion - reference, retrain).significant
    candidate_biased = bias_test("candidate", "", candidate - reference, retrain).significant
    base = None
    if base_validation is not None:
        base = paired_rmsep_difference(*base_validation, confidence=gate.confidence, seed=seed)
    figures = dict(newest_pairs=len(reference), candidate_rmsep=rmse(candidate, reference),
                   champion_rmsep=rmse(champion, reference), difference=difference, champion_stale=stale,
                   base_validation_difference=base)
    if base is not None and base["low"] > 0:
        return GateVerdict(False, f"worse on the base validation split by {base['difference']:+.4g} "
                                  f"({base['low']:+.4g}..{base['high']:+.4g})", **figures)
    if difference["high"] < 0:
        return GateVerdict(True, f"better on the newest {len(reference)} pairs by {difference['difference']:+.4g} "
                                 f"({difference['low']:+.4g}..{difference['high']:+.4g})", **figures)
    if stale and not candidate_biased and difference["difference"] < 0:
        return GateVerdict(True, f"the champion is biased on the newest {len(reference)} pairs and the candidate is not; "
                                 f"RMSEP tie {difference['difference']:+.4g} ({difference['low']:+.4g}.."
                                 f"{difference['high']:+.4g})", **figures)
    return GateVerdict(False, f"not better on the newest {len(reference)} pairs: {difference['difference']:+.4g} "
                              f"({difference['low']:+.4g}..{difference['high']:+.4g})", **figures)
