"""Every transformer and the CNN regressor follow scikit-learn's estimator contract.

The transformers run scikit-learn's own ``check_estimator`` suite. The CNN (TensorFlow, seconds
per fit) gets the parts of the contract that make it usable in scikit-learn: parameters,
``clone``, ``Pipeline``, cross-validation, validation data routed as metadata; and the proof
that a bundle serves exactly what the regressor fitted.
"""

import numpy as np
import pytest
import sklearn
from sklearn.base import clone
from sklearn.model_selection import cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.estimator_checks import parametrize_with_checks

from nirstream.core.chemometrics.augmentation import SpectralAugmenter
from nirstream.core.chemometrics.domain import ApplicabilityDomain
from nirstream.core.chemometrics.spectral_preprocessor import SpectralPreprocessor
from nirstream.core.chemometrics.steps.emsc import EMSC
from nirstream.core.chemometrics.steps.msc import MSC
from nirstream.core.chemometrics.steps.scaling import GlobalScaler
from nirstream.core.chemometrics.steps.derivative import SavitzkyGolayDerivative
from nirstream.core.chemometrics.steps.snv import SNV
from nirstream.core.chemometrics.steps.window import WavelengthWindow
from tests.helpers import tiny_cnn

# Augmentation draws fresh random perturbations on every call, by design: a row's output depends on
# how many rows were drawn before it, so it cannot be invariant to sample order or to subsets.
RANDOM_BY_DESIGN = {
    "check_methods_sample_order_invariance": "fresh random perturbation per call (augmentation)",
    "check_methods_subset_invariance": "fresh random perturbation per call (augmentation)",
}


# Three checks fit on make_blobs data whose mean (EMSC's reference) is flat, [0.5, 0.5, 0.5]: collinear with
# the baseline offset, so EMSC refuses the design, rightly (a real spectrum is never flat).
FLAT_REFERENCE = "check data's mean spectrum is flat: collinear with EMSC's offset term, EMSC refuses it"
EMSC_ON_FLAT_DATA = {name: FLAT_REFERENCE for name in (
    "check_transformer_data_not_an_array", "check_transformer_general", "check_transformer_preserve_dtypes")}

# Six checks fit on 2 channels: too few for even a linear Savitzky–Golay fit (3 channels), refused by name.
TWO_CHANNEL_DATA = {name: "2-channel check data: a Savitzky–Golay derivative needs at least 3 channels" for name in (
    "check_estimators_overwrite_params", "check_estimators_fit_returns_self", "check_readonly_memmap_input",
    "check_fit_idempotent", "check_fit_check_is_fitted", "check_n_features_in")}


def _expected_failures(estimator) -> dict[str, str]:
    if isinstance(estimator, SpectralAugmenter):
        return RANDOM_BY_DESIGN
    if isinstance(estimator, EMSC) or getattr(estimator, "emsc_order", None) is not None:
        failures = dict(EMSC_ON_FLAT_DATA)
        if isinstance(estimator, SpectralPreprocessor):
            # random integers on 3 channels: some rows have a zero EMSC scale, NaN after correction; the
            # worker's screen_transform dead-letters such spectra as degenerate (tests/test_hostile_input.py)
            failures["check_estimators_dtypes"] = "rows with zero EMSC scale in 3-channel random integers"
        return failures
    if isinstance(estimator, SavitzkyGolayDerivative):
        return TWO_CHANNEL_DATA
    if getattr(estimator, "snv", False):
        # random integers on 3 channels: some rows are constant, so SNV divides by a zero spread; the worker's
        # screen_transform dead-letters constant spectra before SNV (tests/test_pretreatments.py)
        return {"check_estimators_dtypes": "constant rows in 3-channel random integers: zero spread for SNV"}
    return {}


# scikit-learn's checks use 1-3 features: EMSC order 0 (reference + offset) fits them; order 2, the
# default, needs 4 channels and is checked on real spectra in test_emsc.py; so are the quadratic Savitzky–Golay
# derivatives (tests/test_pretreatments.py), whose window needs more channels than these checks have: here a
# linear one over 3 channels.
@parametrize_with_checks(
    [EMSC(order=0), MSC(), GlobalScaler(), SpectralAugmenter(random_state=0), ApplicabilityDomain(),
     WavelengthWindow(), SavitzkyGolayDerivative(window_length=3, polyorder=1), SNV(),
     SpectralPreprocessor(emsc_order=0), SpectralPreprocessor(emsc_order=None),
     SpectralPreprocessor(emsc_order=None, snv=True)],
    expected_failed_checks=_expected_failures,
)
def test_transformers_follow_the_scikit_learn_contract(estimator, check):
    check(estimator)


def _tiny_cnn(**params):
    return tiny_cnn(**({"ensemble_size": 1, "random_state": 3} | params))


def test_cnn_parameters_clone_and_refuse_bad_values():
    regressor = _tiny_cnn(epochs=3)
    copy = clone(regressor)
    assert copy.get_params()["epochs"] == 3 and copy.get_params()["preprocessor__emsc_order"] == 2
    assert copy.set_params(augmenter__n_copies=5).augmenter.n_copies == 5
    assert regressor.augmenter.n_copies == 2  # the clone is independent
    with pytest.raises(InvalidParameterError, match="'dropout' parameter"):
        _tiny_cnn(dropout=1.5).fit(np.random.default_rng(0).normal(size=(20, 30)), np.arange(20.0))


def test_cnn_cross_validates_in_a_pipeline(tecator):
    data = tecator.split("train")
    y = data.target("fat")
    scores = cross_validate(make_pipeline(_tiny_cnn()), data.X, y, cv=2, scoring="neg_root_mean_squared_error")
    assert scores["test_score"].shape == (2,) and np.isfinite(scores["test_score"]).all()


def test_validation_data_is_routed_as_metadata(tecator):
    train, monitor = tecator.split("train"), tecator.split("monitor")
    with sklearn.config_context(enable_metadata_routing=True):
        regressor = _tiny_cnn().set_fit_request(X_val=True, y_val=True)
        pipeline = make_pipeline(regressor).fit(train.X, train.target("fat"), X_val=monitor.X, y_val=monitor.target("fat"))
    fitted = pipeline[-1]
    assert fitted.n_features_in_ == train.n_channels
    # all training spectra were trained on (no validation_fraction held out): the scaler saw every target
    assert fitted.target_mean_[0] == pytest.approx(float(np.mean(train.target("fat"))))


def test_without_validation_data_a_fraction_of_the_training_set_is_held_out(tecator):
    train = tecator.split("train")
    fitted = _tiny_cnn(validation_fraction=0.25).fit(train.X, train.target("fat"))
    assert fitted.target_mean_[0] != pytest.approx(float(np.mean(train.target("fat"))))


def test_the_bundle_serves_exactly_what_the_regressor_fitted(tecator, tmp_path):
    from nirstream.core.artifacts.bundle import load_bundle, write_bundle
    from nirstream.core.serving.predictor import Predictor

    train, monitor, test = tecator.split("train"), tecator.split("monitor"), tecator.split("test")
    regressor = _tiny_cnn().fit(train.X, train.target("fat"), X_val=monitor.X, y_val=monitor.target("fat"))
    domain = ApplicabilityDomain().fit(regressor.features(train.X))
    write_bundle(tmp_path / "bundle", regressor.model_, regressor.preprocessor_, domain, targets=["fat"], units={"fat": "%"},
                 target_mean=regressor.target_mean_.tolist(), target_scale=regressor.target_scale_.tolist())
    served = Predictor(load_bundle(tmp_path / "bundle")).predict(test.X).values[:, 0]
    np.testing.assert_allclose(served, regressor.predict(test.X), rtol=1e-5, atol=1e-4)
