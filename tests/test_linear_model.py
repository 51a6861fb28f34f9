"""PLS collapsed to weights and a bias predicts exactly what scikit-learn's PLSRegression predicts."""

import numpy as np
import pytest
from sklearn.cross_decomposition import PLSRegression

from nirstream.core.chemometrics.linear_model import LinearModel


@pytest.mark.parametrize("scale", [False, True])
def test_pls_as_a_linear_model_predicts_what_pls_predicts(tecator, scale):
    X, fat, water = tecator.X, tecator.target("fat"), tecator.target("water")
    models = [PLSRegression(n_components=lv, scale=scale).fit(X, y) for lv, y in ((12, fat), (7, water))]
    linear = LinearModel.from_pls(models)
    expected = np.column_stack([m.predict(X).ravel() for m in models])
    np.testing.assert_allclose(linear.predict(X), expected, rtol=1e-9, atol=1e-9)
    assert linear.weights.shape == (X.shape[1], 2) and linear.n_inputs == X.shape[1]


def test_a_linear_model_refuses_weights_that_do_not_fit():
    with pytest.raises(ValueError, match="do not fit together"):
        LinearModel(np.zeros((5, 2)), np.zeros(3))
    with pytest.raises(ValueError, match="finite"):
        LinearModel(np.full((5, 1), np.nan), np.zeros(1))


def test_a_model_without_skill_is_not_served_even_without_a_champion(tecator, tmp_path):
    """The gate's first check: on the gate data a candidate must beat predicting the training mean, per target."""
    from nirstream.core.artifacts.bundle import write_bundle
    from nirstream.core.chemometrics.domain import ApplicabilityDomain
    from nirstream.core.chemometrics.linear_model import LinearModel
    from nirstream.core.serving.predictor import Predictor
    from nirstream.core.artifacts.registry import ModelRegistry
    from nirstream.core.chemometrics.spectral_preprocessor import SpectralPreprocessor
    from nirstream.trainer.promotion_gate import decide_promotion

    train, gate = tecator.split("train"), tecator.split("monitor")
    preprocessor = SpectralPreprocessor(tecator.wavelengths).fit(train.X)
    features = preprocessor.transform(train.X)
    fat = train.target("fat")
    registry = ModelRegistry(tmp_path)
    decisions = {}
    for name, model in {
        "skilled": LinearModel.from_pls([PLSRegression(n_components=10, scale=False).fit(features, fat)]),
        "constant off the mean": LinearModel(np.zeros((features.shape[1], 1)), np.array([fat.mean() + fat.std()])),
    }.items():
        version = registry.publish(lambda d, m=model: write_bundle(
            d, m, preprocessor, ApplicabilityDomain().fit(features), targets=["fat"], units={"fat": "%"}, target_mean=[0.0],
            target_scale=[1.0], target_range={"fat": (float(fat.min()), float(fat.max()))}, model_kind="pls"))
        decisions[name] = decide_promotion(registry, Predictor(registry.load(version)), gate.X, gate.target("fat")[:, None],
                                           0.0, training_means=np.array([fat.mean()]))
    assert decisions["skilled"].promote
    assert not decisions["constant off the mean"].promote
    assert "does not beat predicting the training mean" in decisions["constant off the mean"].reason
