"""The CNN's hyper-parameter search: sizes that fit the data, validation decides, the test set changes nothing."""

import dataclasses

import numpy as np
import pytest

from nirstream.trainer.data_splits import load_protocol
from nirstream.trainer.search import MIN_WEIGHTS, WEIGHTS_PER_SPECTRUM, parse_budget, search_cnn, search_scoring
from nirstream.trainer.regressor_building import regressor_factory
from nirstream.trainer.train_settings import TrainSettings


def test_budgets_read_like_people_write_them():
    assert parse_budget("90s") == 90 and parse_budget("10m") == 600 and parse_budget("1h") == 3600 and parse_budget(45) == 45
    for bad in ("ten minutes", "-5m", "0"):
        with pytest.raises(ValueError):
            parse_budget(bad)
    with pytest.raises(ValueError, match="budget"):
        TrainSettings(search_budget="soon")


def test_the_search_keeps_the_best_validation_trial_and_never_reads_the_test_set():
    protocol = load_protocol("tecator", ["protein"])
    make = regressor_factory(TrainSettings(protocol="tecator"), protocol.train.wavelengths, None)
    best, trials = search_cnn(protocol, make, budget_seconds=600, seed=3, max_trials=3, epochs=3)
    assert 1 <= len(trials) <= 3  # a trial whose network is too large for 129 spectra is pruned before fitting
    assert best.member_validation_rmsep_[0] == pytest.approx(min(t["score"] for t in trials))
    cap = max(MIN_WEIGHTS, WEIGHTS_PER_SPECTRUM * protocol.train.n_samples)
    assert all(t["weights"] <= cap for t in trials) and best.model_.count_params() <= cap
    shuffled = dataclasses.replace(protocol, test=dataclasses.replace(
        protocol.test, y=np.random.default_rng(0).permutation(protocol.test.y)))
    _, again = search_cnn(shuffled, make, budget_seconds=600, seed=3, max_trials=3, epochs=3)
    assert [t["score"] for t in again] == pytest.approx([t["score"] for t in trials], rel=1e-6)


def test_a_validation_split_too_narrow_to_rank_networks_hands_the_ranking_to_cross_validation():
    protocol = load_protocol("tecator", ["protein"])
    y = protocol.y(protocol.validation)[:, 0]
    middle = np.argsort(np.abs(y - np.median(y)))[:12]  # the 12 validation samples nearest the median: a narrow split
    narrow = dataclasses.replace(protocol, validation=protocol.validation.rows(middle))
    assert search_scoring(protocol) == "validation" and search_scoring(narrow) == "cross-validation"
    make = regressor_factory(TrainSettings(protocol="tecator"), protocol.train.wavelengths, None)
    best, trials = search_cnn(narrow, make, budget_seconds=600, seed=3, max_trials=2, epochs=1)
    assert trials and all(t["scoring"] == "cross-validation" for t in trials)
    # the winner is refitted on the whole training split (each trial's fold networks saw two thirds of it)
    assert best.n_features_in_ == protocol.train.n_channels and best.member_validation_rmsep_
    # the narrow validation split does not enter a trial's score: other validation rows, same scores
    other = dataclasses.replace(protocol, validation=protocol.validation.rows(middle[4:]))
    assert search_scoring(other) == "cross-validation"
    _, again = search_cnn(other, make, budget_seconds=600, seed=3, max_trials=2, epochs=1)
    assert [t["score"] for t in again] == pytest.approx([t["score"] for t in trials], rel=1e-6)
