"""The worker's TensorFlow-free path: every published network is exported to ONNX, checked against Keras on real
spectra, verified like the rest of the bundle, and served by ONNX Runtime without importing TensorFlow."""

import subprocess
import sys

import numpy as np
import pytest

from nirstream.core.artifacts.bundle import BundleError, write_bundle
from nirstream.core.serving.predictor import Predictor
from nirstream.core.artifacts.registry import ModelRegistry
from tests.helpers import fit_small_tecator_parts, tamper, tiny_cnn


@pytest.fixture(scope="module")
def onnx_registry(tecator, tmp_path_factory):
    preprocessor, domain, model, metadata = fit_small_tecator_parts(tecator, seed=4)
    registry = ModelRegistry(tmp_path_factory.mktemp("onnx-registry"))
    features = preprocessor.transform(tecator.split("train").X)
    version = registry.publish(lambda d: write_bundle(d, model, preprocessor, domain, parity_features=features[:64],
                                                      dataset_name="tecator", **metadata))
    registry.promote(version)
    return registry


def test_a_published_network_carries_a_checked_onnx_twin(onnx_registry, tecator):
    bundle_dir = onnx_registry.path("1")
    assert (bundle_dir / "model.onnx").exists()
    parity = onnx_registry.metadata("1").onnx_parity
    assert parity["n_spectra"] == 64 and parity["relative_to_output_scale"] <= 1e-5
    onnx = Predictor(onnx_registry.load("1"))
    keras = Predictor(onnx_registry.load("1", runtime="keras"))
    assert (onnx.bundle.runtime, keras.bundle.runtime) == ("onnx", "keras")
    online, offline = onnx.predict(tecator.X).values, keras.predict(tecator.X).values
    np.testing.assert_allclose(online, offline, rtol=1e-5, atol=1e-5 * np.abs(offline).max())


def test_serving_the_onnx_twin_never_imports_tensorflow(onnx_registry, tecator):
    code = (
        "import sys; from nirstream.core.artifacts.registry import ModelRegistry; from nirstream.core.serving.predictor import Predictor;"
        "from nirstream.core.datasets import load_tecator;"
        f"p = Predictor(ModelRegistry({str(onnx_registry.base)!r}).load()); p.warm_up(); p.predict(load_tecator().X);"
        "print(p.bundle.runtime, 'tensorflow' in sys.modules, 'keras' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                            env={"NIRSTREAM_RUNTIME": "auto", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["onnx", "False", "False"]


def test_a_tampered_onnx_file_is_refused(onnx_registry, tmp_path):
    import shutil

    copy = ModelRegistry(shutil.copytree(onnx_registry.base, tmp_path / "registry"))
    tamper(copy.path("1") / "model.onnx")
    with pytest.raises(BundleError, match="model.onnx checksum mismatch"):
        copy.load("1")


def test_an_ensemble_exports_its_members_so_the_spread_survives(tecator, tmp_path):
    from nirstream.core.chemometrics.domain import ApplicabilityDomain

    train = tecator.split("train")
    regressor = tiny_cnn(ensemble_size=2, random_state=1, epochs=2).fit(train.X, train.target("fat"))
    features = regressor.preprocessor_.transform(train.X)
    registry = ModelRegistry(tmp_path)
    version = registry.publish(lambda d: write_bundle(
        d, regressor.model_, regressor.preprocessor_, ApplicabilityDomain().fit(features), parity_features=features[:32],
        targets=["fat"], units={"fat": "%"}, target_mean=regressor.target_mean_.tolist(),
        target_scale=regressor.target_scale_.tolist()))
    onnx, keras = Predictor(registry.load(version)), Predictor(registry.load(version, runtime="keras"))
    assert onnx.is_ensemble and keras.is_ensemble
    a, b = onnx.predict(tecator.X), keras.predict(tecator.X)
    np.testing.assert_allclose(a.spread, b.spread, rtol=1e-4, atol=1e-5)
    assert np.all(a.spread > 0)
