"""The serving path imports neither the trainer's frameworks nor scikit-learn, SciPy or pandas: a fresh process loads
an ONNX bundle and a PLS bundle (Savitzky–Golay, SNV, EMSC, scaling) through the worker's Predictor, predicts real
spectra with intervals and flags, and declares the worker's commands; and the NumPy arithmetic the worker rebuilds
from a bundle gives what the fitted estimators give."""

import subprocess
import sys

import numpy as np
import pytest
from scipy.signal import savgol_filter
from sklearn.cross_decomposition import PLSRegression

from nirstream.core.artifacts.bundle import write_bundle
from nirstream.core.artifacts.registry import ModelRegistry
from nirstream.core.chemometrics.domain import ApplicabilityDomain
from nirstream.core.chemometrics.fitted.domain import DomainStatistics
from nirstream.core.chemometrics.fitted.preprocessing import FittedPreprocessing
from nirstream.core.chemometrics.fitted.savitzky_golay import local_polynomial_weights, savitzky_golay
from nirstream.core.chemometrics.linear_model import LinearModel
from nirstream.core.chemometrics.spectral_preprocessor import SpectralPreprocessor
from tests.helpers import fit_small_tecator_parts

FORBIDDEN = ("tensorflow", "keras", "sklearn", "scipy", "pandas", "pyarrow", "matplotlib", "optuna", "crepes",
             "chemotools", "onnx", "tf2onnx")
SERVING_ENV = {"NIRSTREAM_RUNTIME": "auto", "NIRSTREAM_ALLOW_UNSIGNED": "true", "PATH": "/usr/bin:/bin"}


@pytest.fixture(scope="module")
def serving_registry(tecator, tmp_path_factory):
    """Version 1: the small CNN with its ONNX twin; version 2: a PLS on derivative + SNV + EMSC features."""
    registry = ModelRegistry(tmp_path_factory.mktemp("serving-registry"))
    preprocessor, domain, model, metadata = fit_small_tecator_parts(tecator, seed=2)
    features = preprocessor.transform(tecator.split("train").X)
    registry.publish(lambda d: write_bundle(d, model, preprocessor, domain, parity_features=features[:32], **metadata))
    train = tecator.split("train")
    pls_prep = SpectralPreprocessor(tecator.wavelengths, derivative=1, snv=True).fit(train.X)
    pls_features = pls_prep.transform(train.X)
    pls = LinearModel.from_pls([PLSRegression(n_components=8, scale=False).fit(pls_features, train.target("fat"))])
    registry.publish(lambda d: write_bundle(d, pls, pls_prep, ApplicabilityDomain().fit(pls_features), model_kind="pls",
                                            **metadata))
    return registry


def _modules_after(code: str, *args: str) -> list[str]:
    """Run ``code`` in a fresh interpreter; return the forbidden top-level packages it left in ``sys.modules``."""
    check = f"\nimport sys; print(sorted({{m.split('.')[0] for m in sys.modules}} & set({FORBIDDEN!r})))"
    result = subprocess.run([sys.executable, *args, "-c", code + check], capture_output=True, text=True, timeout=300,
                            env=SERVING_ENV)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().splitlines()


def test_the_worker_serves_an_onnx_and_a_pls_bundle_without_heavy_imports(serving_registry, tecator, tmp_path):
    np.save(tmp_path / "spectra.npy", tecator.X)
    code = (
        "import numpy as np\n"
        "import nirstream.stream.app, nirstream.stream.cli, nirstream.stream.opcua_server, nirstream.ingest.cli\n"
        "from nirstream.cli import build_parser\n"
        "from nirstream.core.artifacts.registry import ModelRegistry\n"
        "from nirstream.core.serving.predictor import Predictor\n"
        "build_parser()\n"
        f"spectra = np.load({str(tmp_path / 'spectra.npy')!r})\n"
        f"registry = ModelRegistry({str(serving_registry.base)!r})\n"
        "for version in ('1', '2'):\n"
        "    p = Predictor(registry.load(version)); p.warm_up(); batch = p.predict(spectra)\n"
        "    low, high = p.interval_bounds(batch.values)\n"
        "    assert np.isfinite(batch.values).all() and (low < high).all() and set(batch.flags) <= {'ok', 'warning', 'outlier'}\n"
        "    print(p.bundle.runtime)\n"
    )
    assert _modules_after(code) == ["onnx", "linear", "[]"]


def test_declaring_the_worker_command_imports_nothing_heavy():
    """``nirstream worker --help`` builds every command's parser (``-X importtime`` lists what it imported)."""
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "nirstream", "worker", "--help"],
                            capture_output=True, text=True, timeout=120, env=SERVING_ENV)
    assert result.returncode == 0, result.stderr[-3000:]
    imported = {line.split("|")[-1].strip().split(".")[0] for line in result.stderr.splitlines() if "|" in line}
    assert "nirstream" in imported and not imported & set(FORBIDDEN)


@pytest.mark.parametrize("params", [{}, {"first_nm": 900, "last_nm": 1040, "centring": "global"},
                                    {"derivative": 1, "snv": True}, {"derivative": 2, "emsc_order": 1, "smoothing_window": 7},
                                    {"emsc_order": None, "snv": True}])
def test_what_the_worker_rebuilds_transforms_as_the_fitted_estimators_do(tecator, params):
    train, test = tecator.split("train"), tecator.split("test")
    fitted = SpectralPreprocessor(tecator.wavelengths, **params).fit(train.X)
    served = FittedPreprocessing.from_state(*fitted.state())
    X = fitted.steps_["window"].transform(test.X)  # walk the steps: each served step against its estimator
    for (name, step), (served_name, served_step) in zip(fitted.steps_.steps[1:], served.steps[1:], strict=True):
        assert name == served_name
        np.testing.assert_array_equal(served_step.apply(X), step.transform(X))
        X = step.transform(X)
    np.testing.assert_array_equal(served.transform(test.X), fitted.transform(test.X))
    hostile = np.vstack([test.X, np.zeros_like(test.X[:1]), -test.X[:1]])
    for a, b in zip(vars(served.screen_transform(hostile)).values(), vars(fitted.screen_transform(hostile)).values()):
        np.testing.assert_array_equal(a, b)
    features = fitted.transform(train.X)
    domain = ApplicabilityDomain().fit(features)
    served_domain = DomainStatistics.from_state(*domain.state())
    t2, q = served_domain.statistics(fitted.transform(test.X))
    for a, b in zip((t2, q, served_domain.flags(t2, q)), (*domain.statistics(fitted.transform(test.X)), domain.flags(t2, q))):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(("window", "polyorder", "deriv"), [(11, 2, 1), (11, 2, 2), (7, 2, 1), (25, 3, 2), (3, 1, 1)])
def test_the_numpy_savitzky_golay_is_scipys_on_real_spectra(tecator, window, polyorder, deriv):
    expected = savgol_filter(tecator.X, window, polyorder, deriv=deriv, axis=1, mode="interp")
    actual = savitzky_golay(tecator.X, local_polynomial_weights(window, polyorder, deriv))
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-12 * np.abs(expected).max())
    assert np.abs(expected).max() > 1e-4  # a real derivative, not zeros on both sides
