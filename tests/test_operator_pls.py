"""Operator-adaptive PLS: linear pretreatments folded into the weights, chosen by cross-validation on training data."""

import dataclasses

import numpy as np
import pytest
from sklearn.cross_decomposition import PLSRegression
from sklearn.utils.estimator_checks import parametrize_with_checks

from nirstream.core.chemometrics.steps.detrend import PolynomialDetrend
from nirstream.core.chemometrics.steps.norris_williams import NorrisWilliamsDerivative
from nirstream.trainer.data_splits import load_protocol
from nirstream.trainer.operator_bank import OPERATOR_NAMES, OPERATORS, operator_matrix
from nirstream.trainer.operator_pls import OperatorAdaptivePLS, pls1_predictions_per_lv, select_operator
from nirstream.trainer.pls import predictions_per_lv
from nirstream.trainer.pls_family import choose_linear_family, fit_deployable_pls, predict_linear


@parametrize_with_checks(
    [PolynomialDetrend(degree=0), NorrisWilliamsDerivative(gap=1, smoothing=1),
     OperatorAdaptivePLS(operators=["identity", "detrend1"], n_splits=2, n_repeats=1, max_components=2)],
)
def test_the_new_steps_and_the_estimator_follow_the_scikit_learn_contract(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def fat():
    protocol = load_protocol("tecator", "fat")
    return protocol, protocol.train.X, protocol.y(protocol.train)[:, 0]


def test_every_operator_is_the_linear_map_its_matrix_says(fat):
    _, X, _ = fat
    for name in OPERATOR_NAMES:
        step = OPERATORS[name]
        direct = X if step is None else step.fit(X).transform(X)
        np.testing.assert_allclose(X @ operator_matrix(name, X.shape[1]), direct, rtol=1e-9, atol=1e-9 * np.abs(direct).max())


def test_the_screening_pls_matches_scikit_learns(fat):
    _, X, y = fat
    ours = pls1_predictions_per_lv(X[:100], y[:100], X[100:], 15)
    theirs = predictions_per_lv(PLSRegression(15, scale=False).fit(X[:100], y[:100]), X[100:])
    np.testing.assert_allclose(ours, theirs, rtol=1e-7, atol=1e-7 * np.abs(theirs).max())


def test_the_chosen_operator_is_folded_into_weights_on_the_untreated_spectra(fat):
    protocol, X, y = fat
    model = OperatorAdaptivePLS(operators=["identity", "sg1-w11", "sg2-w15", "detrend2", "nw1-g5-s5"], n_repeats=1).fit(X, y)
    best = min(model.cv_results_, key=lambda n: model.cv_results_[n]["rmsecv"].min())
    assert model.operator_ == best and model.n_components_ == model.cv_results_[best]["best_components"]
    M = operator_matrix(model.operator_, X.shape[1])
    direct = PLSRegression(model.n_components_, scale=False).fit(X @ M, y).predict(protocol.test.X @ M).ravel()
    np.testing.assert_allclose(model.predict(protocol.test.X), direct, rtol=1e-8, atol=1e-8)
    refit = OperatorAdaptivePLS(operators=[model.operator_], n_components=model.n_components_).fit(X, y)
    np.testing.assert_allclose(refit.predict(protocol.test.X), model.predict(protocol.test.X))
    # the parsimonious rule never keeps more LVs than the lowest RMSECV does
    assert select_operator(model.cv_results_, "fewest-components-1se")[1] <= model.n_components_


def test_the_linear_family_reads_no_test_lab_value_and_serves_as_one_product():
    protocol = load_protocol("tecator", ["fat", "protein"])
    spoiled = dataclasses.replace(protocol, test=dataclasses.replace(protocol.test, y=np.full_like(protocol.test.y, np.nan)))
    choice = choose_linear_family(spoiled)
    assert set(choice.tried) == {"none", "snv", "emsc", "sg1+snv", "sg2+snv"}
    assert choice.tried[choice.variant]["score"] == min(t["score"] for t in choice.tried.values())
    assert set(choice.operators) == {"fat", "protein"} and all(o in OPERATOR_NAMES for o in choice.operators.values())
    model, preprocessor = fit_deployable_pls(protocol, choice.variant, choice.latent_variables, choice.operators)
    predicted = predict_linear(model, preprocessor, protocol.test.X)
    assert predicted.shape == (protocol.test.n_samples, 2)
    mean_predictor = np.sqrt(np.mean((protocol.y(protocol.test) - protocol.y(protocol.train).mean(axis=0)) ** 2, axis=0))
    assert (np.sqrt(np.mean((predicted - protocol.y(protocol.test)) ** 2, axis=0)) < 0.5 * mean_predictor).all()


def test_too_few_validation_spectra_calibrate_the_intervals_together_with_out_of_fold_training_residuals():
    from nirstream.trainer.intervals import MIN_VALIDATION_CALIBRATION
    from nirstream.trainer.stages.calibration import calibrate_deployed
    from nirstream.trainer.stages.fitting import _pls_candidate
    from nirstream.trainer.train_settings import TrainSettings

    protocol = load_protocol("tecator", "fat")
    few = dataclasses.replace(protocol, validation=protocol.validation.rows(np.arange(12)))
    candidate = _pls_candidate(few, seed=0)
    settings = TrainSettings(protocol="tecator")
    pooled = calibrate_deployed(settings, candidate, few, candidate.predict(few.validation.X))
    assert pooled.calibration == "pooled" and pooled.intervals.n_calibration == 12 + protocol.train.n_samples
    assert "validation and out-of-fold training spectra" in pooled.note and 12 < MIN_VALIDATION_CALIBRATION
    enough = calibrate_deployed(settings, candidate, protocol, candidate.predict(protocol.validation.X))
    assert enough.calibration == "validation" and enough.intervals.n_calibration == protocol.validation.n_samples
