"""Science core of the trainer: metrics, PLS LV choice, CNN architecture and fit, protocols."""

import dataclasses

import numpy as np
import pytest
from sklearn.cross_decomposition import PLSRegression

from tests.conftest import requires_tablets
from tests.helpers import tiny_cnn
from nirstream.trainer.comparison import compare_pls
from nirstream.core.chemometrics.figures_of_merit import regression_metrics
from nirstream.trainer.pls import cross_validate_lvs, fit_pls, predictions_per_lv
from nirstream.trainer.data_splits import load_protocol


def test_metrics_match_hand_computed_values():
    m = regression_metrics([1, 2, 3, 4], [1.5, 2, 2.5, 5])  # residuals 0.5, 0, -0.5, 1
    assert m["n"] == 4
    assert m["rmsep"] == pytest.approx(np.sqrt(1.5 / 4))
    assert m["bias"] == pytest.approx(0.25)
    assert m["sep"] == pytest.approx(np.sqrt(1.25 / 3))
    assert m["r2"] == pytest.approx(1 - 1.5 / 5)
    assert m["slope"] == pytest.approx(5.5 / 5)


def test_metrics_of_a_perfect_prediction():
    m = regression_metrics([1.0, 2.0, 4.0], [1.0, 2.0, 4.0])
    assert (m["rmsep"], m["bias"], m["sep"], m["r2"], m["slope"]) == pytest.approx((0, 0, 0, 1, 1))


def test_metrics_reject_mismatched_lengths():
    with pytest.raises(ValueError):
        regression_metrics([1, 2, 3], [1, 2])


@pytest.fixture(scope="module")
def tecator_first_172(tecator):
    first, last = tecator.rows(np.arange(172)), tecator.rows(np.arange(172, 215))
    return first.X, first.target("fat"), last.X, last.target("fat")


def test_one_pls_fit_gives_every_smaller_model(tecator_first_172):
    X, y, X_test, _ = tecator_first_172
    full = PLSRegression(n_components=10, scale=False).fit(X, y)
    per_lv = predictions_per_lv(full, X_test)
    for k in (1, 4, 10):
        alone = PLSRegression(n_components=k, scale=False).fit(X, y).predict(X_test).ravel()
        np.testing.assert_allclose(per_lv[:, k - 1], alone, atol=1e-8)


def test_pls_reproduces_the_known_tecator_figure(tecator_first_172):
    X, y, X_test, y_test = tecator_first_172
    rmsep = regression_metrics(y_test, fit_pls(X, y, 15).predict(X_test))["rmsep"]
    assert rmsep == pytest.approx(2.1, abs=0.25)  # PLS, 15 LV, fat %: the published figure


def test_pls_cross_validation_picks_a_sensible_lv_count(tecator_first_172):
    X, y, X_test, y_test = tecator_first_172
    selection = cross_validate_lvs(X, y, n_repeats=1)
    lv = selection.best("min")
    assert 8 <= lv <= 20  # fat needs many LVs on these spectra; 1-5 LV models are far off
    assert selection.best("1se") <= lv
    assert regression_metrics(y_test, fit_pls(X, y, lv).predict(X_test))["rmsep"] < 3.0


def test_pls_lv_choice_never_looks_at_the_test_set():
    protocol = load_protocol("tecator")
    shuffled_test = dataclasses.replace(protocol.test, y=np.random.default_rng(0).permutation(protocol.test.y))
    shuffled = dataclasses.replace(protocol, test=shuffled_test)
    honest, blind = compare_pls(protocol, "none", max_lv=15)[0], compare_pls(shuffled, "none", max_lv=15)[0]
    for rule in ("min", "1se"):
        assert honest[f"cv_{rule}"]["lv"] == blind[f"cv_{rule}"]["lv"]
    assert honest["rmsecv"] == blind["rmsecv"]


def test_cnn_builder_follows_the_paper():
    from nirstream.trainer.cnn import build_cnn

    model = build_cnn(600)
    assert model.count_params() == 1_233_433  # ~1.23 M weights, almost all in Dense(128)
    shapes = [tuple(layer.output.shape[1:]) for layer in model.layers]
    assert shapes == [(600, 1), (600, 8), (600, 16), (9600,), (9600,), (128,), (1,)]
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["GaussianNoise", "Conv1D", "Conv1D", "Flatten", "Dropout", "Dense", "Dense"]


def fit_on(regressor, protocol):
    """Fit on the protocol's one target as a 1-D y (so predictions are 1-D too)."""
    return regressor.fit(protocol.train.X, protocol.y(protocol.train)[:, 0], X_val=protocol.validation.X,
                         y_val=protocol.y(protocol.validation)[:, 0])


def test_several_targets_share_one_network_with_one_output_each():
    protocol = load_protocol("tecator", ["water", "fat", "protein"])
    regressor = tiny_cnn(epochs=3, random_state=2, ensemble_size=2).fit(
        protocol.train.X, protocol.y(protocol.train), X_val=protocol.validation.X, y_val=protocol.y(protocol.validation))
    assert regressor.n_outputs_ == 3 and regressor.model_.output_shape == (None, 3)
    predicted = regressor.predict(protocol.test.X)
    assert predicted.shape == (43, 3) and regressor.predict_members(protocol.test.X).shape == (43, 2, 3)
    # each target standardised on its own training values: the network's outputs are in standard deviations
    np.testing.assert_allclose(regressor.target_mean_, protocol.y(protocol.train).mean(axis=0))
    np.testing.assert_allclose(regressor.target_scale_, protocol.y(protocol.train).std(axis=0))
    with pytest.raises(ValueError, match="y_val has 1 target"):
        regressor.fit(protocol.train.X, protocol.y(protocol.train), X_val=protocol.validation.X,
                      y_val=protocol.validation.target("fat"))


def test_a_tiny_cnn_fit_on_tecator_lowers_the_loss():
    protocol = load_protocol("tecator")
    regressor = fit_on(tiny_cnn(n_copies=3, filters=(8, 16), kernel_size=32, dense_units=128, epochs=4, batch_size=32,
                           random_state=1), protocol)
    loss = regressor.history_["loss"]
    assert len(loss) >= 2 and loss[-1] < loss[0]
    predictions = regressor.predict(protocol.test.X)
    assert predictions.shape == (protocol.test.n_samples,) and np.isfinite(predictions).all()


def test_tecator_protocol_shapes():
    protocol = load_protocol("tecator")
    assert protocol.targets == ("fat",)
    assert (protocol.train.X.shape, protocol.validation.X.shape, protocol.test.X.shape) == (
        (129, 100), (43, 100), (43, 100))


@requires_tablets
@pytest.mark.tablets
@pytest.mark.parametrize("name, tests", [
    ("same-instrument", {"test": 460}),
    ("cross-instrument", {"test": 460, "calibrate_2": 155, "validate_2": 40}),
])
def test_tablet_protocol_shapes(name, tests):
    protocol = load_protocol(name)
    assert protocol.targets == ("assay",)
    assert protocol.train.X.shape == (155, 600) and protocol.validation.X.shape == (40, 600)
    assert protocol.train.wavelengths[[0, -1]].tolist() == [600.0, 1798.0]
    assert {k: v.n_samples for k, v in protocol.tests.items()} == tests


def test_unknown_protocol_and_target_are_refused():
    with pytest.raises(ValueError):
        load_protocol("nonsense")
    with pytest.raises(KeyError):
        load_protocol("tecator", ["fat", "assay"])


@pytest.fixture(scope="module")
def tiny_ensemble():
    """Two tiny members fitted on tecator: a seed ensemble in seconds."""
    protocol = load_protocol("tecator")
    return protocol, fit_on(tiny_cnn(random_state=5, ensemble_size=2), protocol)


def test_a_seed_ensemble_is_one_keras_file_that_averages_its_members(tiny_ensemble, tmp_path):
    import keras

    protocol, regressor = tiny_ensemble
    assert regressor.member_seeds_ == [5, 6] and len(regressor.members_) == 2
    assert [type(layer).__name__ for layer in regressor.model_.layers][-1] == "Average"
    members = regressor.predict_members(protocol.test.X)
    assert members.shape == (protocol.test.n_samples, 2)
    assert not np.allclose(members[:, 0], members[:, 1])  # different seeds, different members
    np.testing.assert_allclose(regressor.predict(protocol.test.X), members.mean(axis=1), rtol=1e-5, atol=1e-4)

    path = tmp_path / "model.keras"
    regressor.model_.save(path)
    loaded = keras.saving.load_model(path, compile=False, safe_mode=True)
    features = regressor.features(protocol.test.X)[:, :, None]
    np.testing.assert_allclose(loaded.predict(features, verbose=0), regressor.model_.predict(features, verbose=0),
                               rtol=1e-5, atol=1e-6)
    # the training curves and the kernel plot still work on an ensemble
    assert {"loss", "val_loss", "learning_rate"} <= set(regressor.history_)
    assert len(regressor.histories_) == 2 and regressor.history_ is regressor.histories_[0]
    assert regressor.best_epoch_ == regressor.best_epochs_[0]


def test_the_kernel_plot_finds_the_first_member_of_an_ensemble(tiny_ensemble, tmp_path):
    from nirstream.trainer.report import plot_kernel_activations

    protocol, regressor = tiny_ensemble
    features = regressor.features(protocol.train.X).mean(axis=0)
    path = plot_kernel_activations(regressor.model_, features, protocol.train.wavelengths, tmp_path / "k.png")
    assert path.stat().st_size > 0


def test_best_validation_mode_deploys_the_member_with_the_lowest_validation_rmsep():
    protocol = load_protocol("tecator")
    regressor = fit_on(tiny_cnn(random_state=5, ensemble_size=2, ensemble_mode="best-validation"), protocol)
    chosen = int(np.argmin(regressor.member_validation_rmsep_))
    assert regressor.chosen_member_ == chosen and regressor.model_ is regressor.members_[chosen]
    validation_rmsep = regression_metrics(protocol.y(protocol.validation), regressor.predict(protocol.validation.X))["rmsep"]
    assert validation_rmsep == pytest.approx(min(regressor.member_validation_rmsep_), rel=1e-4)


def test_quick_training_fits_a_single_member():
    from nirstream.trainer.regressor_building import cnn_regressor
    from nirstream.trainer.train_settings import TrainSettings

    assert cnn_regressor(TrainSettings(quick=True), 155).ensemble_size == 1
    assert cnn_regressor(TrainSettings(quick=True, ensemble_size=2), 155).ensemble_size == 2


@pytest.mark.parametrize("n_train", [40, 155, 600, 1557, 4000])
def test_quick_training_has_a_fixed_budget_whatever_the_training_sets_size(n_train):
    from nirstream.trainer.regressor_building import QUICK_SPECTRA_SEEN, cnn_regressor
    from nirstream.trainer.train_settings import TrainSettings

    regressor = cnn_regressor(TrainSettings(quick=True), n_train)
    seen = regressor.epochs * regressor.augmenter.n_copies * n_train
    assert 10 <= regressor.epochs <= 30
    assert regressor.epochs in (10, 30) or 0.8 * QUICK_SPECTRA_SEEN <= seen <= 1.2 * QUICK_SPECTRA_SEEN
    assert regressor.early_stopping_start == regressor.epochs


def test_collapsed_members_are_replaced_then_refused():
    """The collapse guard looks at training data only; here every fit 'collapses' (no spread is enough)."""
    protocol = load_protocol("tecator")
    regressor = tiny_cnn(n_copies=1, random_state=7, ensemble_size=2, max_training_loss=0.0, collapse_check_epoch=1,
                         min_prediction_spread=1e9, max_member_retries=1)
    with pytest.raises(RuntimeError, match=r"seeds \[7, 8\] all collapsed"):
        fit_on(regressor, protocol)


def test_a_slow_start_is_not_taken_for_a_dead_network():
    """Loss still above the threshold, but the predictions vary (a tiny network after one epoch: a little): the guard
    lets the member train on."""
    protocol = load_protocol("tecator")
    regressor = fit_on(tiny_cnn(n_copies=1, random_state=7, ensemble_size=1, max_training_loss=0.0, collapse_check_epoch=1,
                                min_prediction_spread=1e-4, epochs=2), protocol)
    assert regressor.collapsed_seeds_ == [] and regressor.member_seeds_ == [7]


def test_a_served_ensemble_reports_how_much_its_members_disagree(tiny_ensemble, tmp_path):
    from nirstream.core.artifacts.bundle import load_bundle, write_bundle
    from nirstream.core.chemometrics.domain import ApplicabilityDomain
    from nirstream.core.serving.predictor import Predictor

    protocol, regressor = tiny_ensemble
    domain = ApplicabilityDomain().fit(regressor.features(protocol.train.X))
    write_bundle(tmp_path / "bundle", regressor.model_, regressor.preprocessor_, domain, targets=["fat"],
                 target_mean=regressor.target_mean_.tolist(), target_scale=regressor.target_scale_.tolist())
    served = Predictor(load_bundle(tmp_path / "bundle")).predict(protocol.test.X)
    members = regressor.predict_members(protocol.test.X)
    np.testing.assert_allclose(served.values[:, 0], members.mean(axis=1), rtol=1e-5, atol=1e-4)  # the deployed average
    np.testing.assert_allclose(served.spread[:, 0], members.std(axis=1), rtol=1e-4, atol=1e-4)
    assert (served.spread > 0).all()
