"""The retraining policy and the time-forward promotion gate decide from lab pairs as their rules state.
References are tecator's fat lab values; predictions are those values plus stated errors."""

from __future__ import annotations

import numpy as np

from nirstream.trainer.time_forward_gate import judge
from nirstream.trainer.retrain_policy import bias_test, decide
from nirstream.trainer.service_settings import GatePolicy, RetrainPolicy

POLICY = RetrainPolicy()


def test_bias_needs_its_floor_of_pairs_and_k_standard_errors(rng):
    noise = rng.normal(0, 1.0, 40)
    assert not bias_test("a", "fat", noise[:9] + 5, POLICY).significant  # 9 < ISO 12099's 10
    assert bias_test("a", "fat", noise[:10] + 5, POLICY).significant
    unbiased = noise[:20] - noise[:20].mean()  # exactly zero mean
    assert not bias_test("a", "fat", unbiased, POLICY).significant
    # only the most recent window counts: an old bias no longer does
    assert not bias_test("a", "fat", np.concatenate([noise[:30] + 5, unbiased]), POLICY).significant


def test_retrain_on_enough_new_pairs_or_a_significant_bias_but_not_too_often(rng):
    quiet = {("line-1", "fat"): rng.normal(0, 1, 20) - 0}
    biased = {("line-1", "fat"): rng.normal(4, 1, 20)}
    assert decide(POLICY, new_pairs=20, recent_errors={}, minutes_since_last_start=None, running=False).retrain
    assert not decide(POLICY, new_pairs=19, recent_errors={}, minutes_since_last_start=None, running=False).retrain
    by_bias = decide(POLICY, new_pairs=3, recent_errors=biased, minutes_since_last_start=120, running=False)
    assert by_bias.retrain and "line-1/fat" in by_bias.reason
    too_soon = decide(POLICY, new_pairs=50, recent_errors=biased, minutes_since_last_start=10, running=False)
    assert not too_soon.retrain and too_soon.biased  # the bias is still reported
    assert not decide(POLICY, new_pairs=50, recent_errors=quiet, minutes_since_last_start=None, running=True).retrain


def test_the_gate_promotes_a_better_candidate_and_rejects_a_worse_or_tied_one(tecator, rng):
    fat = tecator.y[-20:, tecator.target_names.index("fat")]
    champion = fat + rng.normal(0, 2.0, 20)
    better = fat + rng.normal(0, 0.5, 20)
    verdict = judge(fat, better, champion, GatePolicy(), POLICY)
    assert verdict.passed and verdict.difference["high"] < 0 and verdict.candidate_rmsep < verdict.champion_rmsep
    assert not judge(fat, champion, better, GatePolicy(), POLICY).passed
    assert not judge(fat, champion + rng.normal(0, 0.01, 20), champion, GatePolicy(), POLICY).passed  # a tie


def test_a_tie_passes_only_against_a_stale_champion_and_never_when_worse_on_base_validation(tecator, rng):
    fat = tecator.y[-20:, tecator.target_names.index("fat")]
    noise = rng.normal(0, 2.0, 20)
    stale_champion = fat + noise - noise.mean() + 1.5  # biased by 1.5: > 3 standard errors of its 20 errors
    candidate = fat + rng.normal(0, 2.1, 20)
    verdict = judge(fat, candidate, stale_champion, GatePolicy(), POLICY)
    assert verdict.champion_stale
    assert verdict.passed == (verdict.difference["difference"] < 0)
    base = tecator.y[:40, 1]
    worse_on_base = (base, base + rng.normal(0, 3, 40), base + rng.normal(0, 0.5, 40))
    refused = judge(fat, fat + rng.normal(0, 0.5, 20), stale_champion, GatePolicy(), POLICY, base_validation=worse_on_base)
    assert not refused.passed and "base validation" in refused.reason
