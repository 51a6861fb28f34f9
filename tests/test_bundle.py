"""Model bundles and the file-system registry, on real tecator spectra with a small Keras model."""

import json
import shutil

import numpy as np
import pytest

from nirstream.core.artifacts.bundle import MODEL_FILE, BundleError, load_bundle, verify_bundle, write_bundle
from nirstream.core.serving.predictor import Predictor
from nirstream.core.artifacts.registry import ModelRegistry
from tests.helpers import fit_small_tecator_parts, tamper


@pytest.fixture(scope="module")
def fitted_parts(tecator):
    return fit_small_tecator_parts(tecator, epochs=3, first_nm=860, last_nm=1040)


def make_bundle(directory, fitted_parts):
    preprocessor, domain, model, meta = fitted_parts
    return write_bundle(directory, model, preprocessor, domain, dataset_name="tecator", **meta)


def test_round_trip_gives_identical_predictions(tmp_path, fitted_parts, tecator):
    preprocessor, domain, model, meta = fitted_parts
    path = make_bundle(tmp_path / "7", fitted_parts)
    bundle = load_bundle(path)
    assert bundle.version == "7" and bundle.metadata.targets == ["fat"] and bundle.metadata.unit("fat") == "%"
    test = tecator.split("test")
    direct = model.predict(preprocessor.transform(test.X), verbose=0).ravel() * meta["target_scale"][0] + meta["target_mean"][0]
    loaded = Predictor(bundle).predict(test.X)
    np.testing.assert_allclose(loaded.values[:, 0], direct, rtol=1e-5)
    np.testing.assert_allclose(bundle.preprocessor.transform(test.X), preprocessor.transform(test.X), atol=1e-12)
    assert bundle.metadata.input_grid.count == 100
    assert loaded.flags.shape == (43,)


def test_domain_flags_foreign_spectra(fitted_parts, tecator):
    preprocessor, domain, *_ = fitted_parts
    train_features = preprocessor.transform(tecator.split("train", "monitor").X)
    t2, q = domain.statistics(train_features)
    assert np.mean(domain.flags(t2, q) == "ok") > 0.85  # most training spectra inside their own 95 % limits
    foreign = tecator.X[:5] + 0.05 * np.sin(np.linspace(0, 20, tecator.n_channels))
    t2f, qf = domain.statistics(preprocessor.transform(foreign))
    assert set(domain.flags(t2f, qf)) == {"outlier"}
    assert domain.limits_["t2_99"] > domain.limits_["t2_95"] and domain.limits_["q_99"] > domain.limits_["q_95"]


def test_tampered_partial_and_foreign_bundles_are_refused(tmp_path, fitted_parts):
    good = make_bundle(tmp_path / "good", fitted_parts)
    verify_bundle(good)

    tampered = shutil.copytree(good, tmp_path / "tampered")
    tamper(tampered / MODEL_FILE)
    with pytest.raises(BundleError, match="model.keras checksum mismatch"):
        load_bundle(tampered)

    faults = {  # each copy of the good bundle with one fault, and the reason it must be refused with
        "partial": (lambda d: (d / "MANIFEST.json").unlink(), "partial"),
        "extra": (lambda d: (d / "payload.pkl").write_bytes(b"\x80\x04"), "unexpected file"),
        "missing": (lambda d: (d / "arrays.npz").unlink(), "arrays.npz is missing"),
    }
    for name, (break_it, reason) in faults.items():
        broken = shutil.copytree(good, tmp_path / name)
        break_it(broken)
        with pytest.raises(BundleError, match=reason):
            load_bundle(broken)

    with pytest.raises(BundleError, match="no such bundle"):
        load_bundle(tmp_path / "absent")
    with pytest.raises(BundleError, match="not empty"):
        make_bundle(good, fitted_parts)


def test_registry_publish_promote_reject_rollback(tmp_path, fitted_parts):
    registry = ModelRegistry(tmp_path / "registry")
    assert registry.versions() == [] and registry.champion() is None
    with pytest.raises(BundleError, match="no champion"):
        registry.load()

    first = registry.publish(lambda d: make_bundle(d, fitted_parts), details={"rmsep": 2.0})
    second = registry.publish(lambda d: make_bundle(d, fitted_parts))
    assert (first, second) == ("1", "2") and registry.versions() == ["1", "2"]
    assert not [p for p in registry.base.iterdir() if p.name.startswith(".incoming")]

    registry.promote(first, "first model")
    assert registry.champion() == "1" and registry.load().version == "1"
    registry.promote(second, "beats 1")
    third = registry.publish(lambda d: make_bundle(d, fitted_parts))
    registry.reject(third, "RMSEP 2.4 not below champion 2.1")
    assert registry.status(third) == "rejected" and registry.status(second) == "champion"
    assert registry.rollback("bad in production") == "1"
    assert registry.champion() == "1"
    assert [e.event for e in registry.history()] == [
        "published", "published", "promoted", "promoted", "published", "rejected", "rolled_back",
    ]
    assert json.loads((registry.base / "champion.json").read_text())["previous"] == "2"


def test_a_failed_write_leaves_no_version_behind(tmp_path, fitted_parts):
    registry = ModelRegistry(tmp_path)

    def half_written(directory):
        make_bundle(directory, fitted_parts)
        (directory / "bundle.json").write_text("{}")  # corrupt after the manifest was written

    with pytest.raises(BundleError, match="checksum mismatch"):
        registry.publish(half_written)
    assert registry.versions() == []
    assert [p.name for p in tmp_path.iterdir()] == []


def test_a_spectrum_predicts_bit_identically_in_any_batch(tmp_path, fitted_parts, tecator):
    # A replayed batch after a crash has other neighbours; its predictions must be identical.
    predictor = Predictor(load_bundle(make_bundle(tmp_path / "1", fitted_parts)))
    everything = predictor.predict(tecator.X).values
    for start, size in [(0, 1), (3, 2), (10, 7), (20, 33), (50, 130)]:
        np.testing.assert_array_equal(predictor.predict(tecator.X[start : start + size]).values, everything[start : start + size])


def test_a_concurrent_reader_never_sees_a_half_written_version(tmp_path, fitted_parts):
    import threading

    registry = ModelRegistry(tmp_path / "registry")
    done = threading.Event()

    def writer():
        try:
            for i in range(4):
                version = registry.publish(lambda d: make_bundle(d, fitted_parts))
                registry.promote(version, f"round {i}")
                if i == 2:
                    registry.rollback("round trip")
        finally:
            done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    observations = 0
    while not done.is_set() or observations == 0:
        for version in registry.versions():
            verify_bundle(registry.path(version))  # raises on anything partial
            observations += 1
        champion = registry.champion()
        if champion is not None:
            verify_bundle(registry.path(champion))
    thread.join()
    assert registry.versions() == ["1", "2", "3", "4"] and registry.champion() == "4"
    assert observations > 0


def test_format_1_metadata_with_one_target_still_loads():
    from nirstream.core.artifacts.bundle import BundleMetadata

    old = {"format": 1, "target": "assay", "unit": "mg", "target_mean": 200.0, "target_scale": 20.0,
           "target_range": [150.0, 250.0], "input_grid": {"start_nm": 600, "step_nm": 2, "count": 650},
           "preprocessing": {}, "domain": {}}
    meta = BundleMetadata.model_validate(old)
    assert meta.targets == ["assay"] and meta.units == {"assay": "mg"} and meta.target_mean == [200.0]
    assert meta.target_range == {"assay": (150.0, 250.0)} and meta.intervals is None
    two_targets_one_mean = {k: v for k, v in old.items() if k not in ("target", "unit", "target_range")} | {
        "format": 2, "targets": ["a", "b"], "target_mean": [1.0], "target_scale": [1.0, 1.0]}
    with pytest.raises(ValueError, match="one value per target"):
        BundleMetadata.model_validate(two_targets_one_mean)


def test_a_bundle_with_preprocessing_state_from_before_the_steps_still_loads(tmp_path, fitted_parts):
    """bundle.json and arrays.npz holding the hand-built chain's state (saved at f381ebe for the same 860-1040 nm
    window, tests/data/make_preprocessing_before_steps.py): the bundle serves that chain's features exactly."""
    from pathlib import Path

    from nirstream.core.artifacts.bundle import ARRAYS_FILE, BUNDLE_FILES, BUNDLE_FORMAT, METADATA_FILE
    from nirstream.core.artifacts.manifest import write_manifest

    data = Path(__file__).parent / "data"
    old = json.loads((data / "preprocessing_before_steps.json").read_text())["window_emsc2_global"]
    with np.load(data / "preprocessing_before_steps.npz", allow_pickle=False) as npz:
        before = {key: npz[key] for key in npz.files}
    path = make_bundle(tmp_path / "old", fitted_parts)
    metadata = json.loads((path / METADATA_FILE).read_text())
    (path / METADATA_FILE).write_text(json.dumps(metadata | {"preprocessing": old["state"]}))
    with np.load(path / ARRAYS_FILE, allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files if not key.startswith("preprocessing.")}
    prefix = "window_emsc2_global.state."
    arrays |= {f"preprocessing.{k[len(prefix):]}": v for k, v in before.items() if k.startswith(prefix)}
    np.savez(path / ARRAYS_FILE, **arrays)
    write_manifest(path, BUNDLE_FILES, format=BUNDLE_FORMAT)

    _, _, model, meta = fitted_parts
    served = Predictor(load_bundle(path)).predict(before["inputs"])
    expected = model.predict(before["window_emsc2_global.transform"], verbose=0).ravel() * meta["target_scale"][0] + meta["target_mean"][0]
    np.testing.assert_allclose(served.values[10:, 0], expected, rtol=1e-5)
    assert (served.degenerate != "").tolist() == before["window_emsc2_global.degenerate"].tolist()
