"""When to retrain: enough new lab values since the champion was trained, or an analyzer whose recent
predictions are significantly biased; never more often than the policy's interval, one retrain at a time."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from nirstream.trainer.service_settings import RetrainPolicy


@dataclass(frozen=True)
class BiasTest:
    """An analyzer's recent errors (prediction - lab) for one target: their mean against k standard errors."""

    analyzer: str
    target: str
    n: int
    bias: float
    standard_error: float
    significant: bool


@dataclass(frozen=True)
class RetrainDecision:
    retrain: bool
    reason: str
    biased: tuple[BiasTest, ...] = ()


def bias_test(analyzer: str, target: str, errors: Sequence[float], policy: RetrainPolicy) -> BiasTest:
    """Mean error of the most recent ``policy.bias_window`` errors; significant when at least
    ``bias_min_pairs`` of them put it beyond ``bias_k`` standard errors of the mean."""
    recent = np.asarray(errors, dtype=np.float64)[-policy.bias_window:]
    n = len(recent)
    if n < policy.bias_min_pairs:
        return BiasTest(analyzer, target, n, float(recent.mean()) if n else math.nan, math.nan, False)
    standard_error = float(recent.std(ddof=1) / math.sqrt(n))
    bias = float(recent.mean())
    # a perfectly constant error (standard error 0) is significant as soon as it is not 0
    significant = abs(bias) > policy.bias_k * standard_error if standard_error > 0 else bias != 0
    return BiasTest(analyzer, target, n, bias, standard_error, significant)


def decide(policy: RetrainPolicy, *, new_pairs: int, recent_errors: Mapping[tuple[str, str], Sequence[float]],
           minutes_since_last_start: float | None, running: bool) -> RetrainDecision:
    """Whether to start a retrain now. ``new_pairs``: stored pairs newer than the champion's training data;
    ``recent_errors``: (analyzer, target) -> errors in lab-time order; ``minutes_since_last_start``: None if no
    retrain has started in this service's life."""
    biased = tuple(t for (analyzer, target), errors in recent_errors.items()
                   if (t := bias_test(analyzer, target, errors, policy)).significant)
    if running:
        return RetrainDecision(False, "a retrain is running", biased)
    if minutes_since_last_start is not None and minutes_since_last_start < policy.min_interval_minutes:
        return RetrainDecision(False, f"last retrain started {minutes_since_last_start:.1f} min ago "
                                      f"(< {policy.min_interval_minutes:g})", biased)
    if new_pairs >= policy.min_new_pairs:
        return RetrainDecision(True, f"{new_pairs} new lab pairs (>= {policy.min_new_pairs})", biased)
    if biased:
        worst = max(biased, key=lambda t: abs(t.bias) / t.standard_error if t.standard_error > 0 else math.inf)
        return RetrainDecision(True, f"bias {worst.bias:+.4g} on {worst.analyzer}/{worst.target} over {worst.n} pairs "
                                     f"(> {policy.bias_k:g} standard errors of {worst.standard_error:.3g})", biased)
    return RetrainDecision(False, f"{new_pairs} new lab pairs (< {policy.min_new_pairs}), no significant bias", biased)
