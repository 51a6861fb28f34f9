"""``nirstream train`` end to end on real data: bundle, promotion gate, report, registry CLI."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from nirstream.core.artifacts.manifest import manifest_checksum
from nirstream.core.serving.predictor import Predictor
from nirstream.core.artifacts.registry import ModelRegistry
from tests.conftest import requires_tablets
from nirstream.trainer.train_settings import TrainSettings
from nirstream.trainer.training_run import run_training


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    base = tmp_path_factory.mktemp("trained")
    settings = TrainSettings(protocol="tecator", targets=["water", "fat", "protein"], quick=True, family="cnn",
                             registry=base / "registry", report_dir=base / "reports", by="nightly-retrain")
    return settings, run_training(settings, verbose=0)


def test_first_model_is_published_promoted_and_reported(trained, tecator):
    settings, summary = trained
    registry = ModelRegistry(settings.registry)
    assert summary["version"] == "1" and registry.champion() == "1"
    checksum = manifest_checksum(registry.path("1"))  # the audit trail: who (train's --by), the bundle's checksum
    assert [(e.event, e.by, e.checksum) for e in registry.history()] == [("published", "nightly-retrain", checksum),
                                                                          ("promoted", "nightly-retrain", checksum)]
    report_dir = settings.report_dir / "tecator-v1"
    plots = [f"predicted_vs_reference_{t}.png" for t in ("water", "fat", "protein")]
    for name in ("report.html", "report.json", "training_curves.png", "kernel_activations.png", *plots):
        assert (report_dir / name).stat().st_size > 1000, name
    report = json.loads((report_dir / "report.json").read_text())
    html = (report_dir / "report.html").read_text()
    # family cnn: no PLS competed, so no CNN - PLS candidate line; the deployed CNN - baseline CV-PLS is reported
    assert report["cnn_minus_pls"] == {}
    for target in ("water", "fat", "protein"):  # one PLS baseline per target, and the paired deployed - PLS difference
        assert report["pls"][target]["cv_min"]["lv"] >= 1 and "oracle_chosen_on_test" in report["pls"][target]
        difference = report["deployed_minus_pls"][target]["test"]
        assert difference["low"] <= difference["difference"] <= difference["high"]
        ci = report["cnn"]["tests"]["test"][target]["rmsep_ci95"]
        assert ci["low"] < report["cnn"]["tests"]["test"][target]["rmsep"] < ci["high"]
    assert "ORACLE" in html and "Which data chose what" in html and "promotion gate" in html
    assert report["promotion"]["gate_data"] == "validation"
    # the bundle predicts exactly what the report says, through the worker's code path
    bundle = registry.load("1")
    test = tecator.split("test")
    values = Predictor(bundle).predict(test.X).values
    assert bundle.metadata.targets == ["water", "fat", "protein"] and values.shape == (43, 3)
    for j, target in enumerate(bundle.metadata.targets):
        rmsep = float(np.sqrt(np.mean((values[:, j] - test.target(target)) ** 2)))
        assert rmsep == pytest.approx(summary["cnn"]["tests"]["test"][target]["rmsep"], rel=1e-4)
        assert rmsep < 0.6 * test.target(target).std()  # --quick still beats the mean predictor by far, every target
    assert bundle.metadata.dataset_fingerprint == tecator.split("train").fingerprint()
    assert bundle.metadata.training["n_train"] == 129
    # intervals calibrated on the 43 monitor (validation) spectra, checked on the test set
    intervals = bundle.metadata.intervals
    assert intervals.coverage == 0.9 and intervals.n_calibration == 43 and set(intervals.half_width) == {"water", "fat", "protein"}
    assert all(0.7 <= c["coverage"] <= 1.0 for c in report["intervals"]["test_coverage"]["test"].values())


def test_a_candidate_that_does_not_beat_the_champion_is_rejected_with_reason(trained):
    settings, _ = trained
    summary = run_training(settings.model_copy(update={"promote_margin": 0.95, "seed": 1, "pls": False}), verbose=0)
    registry = ModelRegistry(settings.registry)
    assert summary["version"] == "2" and registry.champion() == "1"
    assert registry.status("2") == "rejected"
    assert "does not beat champion 1" in registry.history()[-1].reason and registry.history()[-1].by == "nightly-retrain"
    assert registry.audit.verify().intact


def test_extra_labelled_spectra_join_the_training_set(trained, tecator, tmp_path):
    settings, _ = trained
    monitor = tecator.split("monitor")
    frame = pd.DataFrame(monitor.X, columns=[f"{w:.4f}" for w in tecator.wavelengths])
    for target in ("protein", "fat", "water"):
        frame.insert(0, target, monitor.target(target))
    frame.to_csv(tmp_path / "labelled.csv", index=False)
    summary = run_training(settings.model_copy(update={"extra_training": tmp_path / "labelled.csv", "pls": False,
                                                         "registry": tmp_path / "registry"}), verbose=0)
    bundle = ModelRegistry(tmp_path / "registry").load(summary["version"])
    assert bundle.metadata.training["n_train"] == 129 + 43


def nirstream(*args):
    return subprocess.run([sys.executable, "-m", "nirstream", *args], capture_output=True, text=True, timeout=300)


def test_models_cli_lists_shows_promotes_and_rolls_back(trained):
    settings, _ = trained
    registry = str(settings.registry)
    listing = nirstream("models", "list", "--registry", registry)
    assert listing.returncode == 0 and "champion" in listing.stdout and "rejected" in listing.stdout
    shown = nirstream("models", "show", "--registry", registry)
    assert shown.returncode == 0 and json.loads(shown.stdout)["manifest"]["files"]["model.keras"]["sha256"]
    assert nirstream("models", "promote", "2", "--registry", registry).returncode == 0
    assert ModelRegistry(registry).champion() == "2"
    rolled = nirstream("models", "rollback", "--registry", registry)
    assert rolled.returncode == 0 and "champion is now version 1" in rolled.stdout
    evaluated = nirstream("evaluate", "--protocol", "tecator", "--registry", registry)
    assert evaluated.returncode == 0 and "RMSEP" in evaluated.stdout
    missing = nirstream("models", "promote", "99", "--registry", registry)
    assert missing.returncode == 2 and "no such bundle" in missing.stderr


@requires_tablets
@pytest.mark.tablets
def test_quick_cross_instrument_training_on_the_tablets(tmp_path):
    settings = TrainSettings(protocol="cross-instrument", quick=True, registry=tmp_path / "registry", report_dir=tmp_path)
    summary = run_training(settings, verbose=0)
    bundle = ModelRegistry(settings.registry).load(summary["version"])
    assert bundle.metadata.input_grid.count == 650  # analyzers send whole spectra
    assert bundle.preprocessor.n_model_channels == 600  # the model sees 600-1798 nm
    assert set(summary["cnn"]["tests"]) == {"test", "calibrate_2", "validate_2"}
    assert summary["pls"]["assay"]["oracle_chosen_on_test"]["test"]["n"] == 460
    protocol_test = summary["cnn"]["tests"]["test"]["assay"]
    assert protocol_test["rmsep"] < 0.75 * 15.75  # test_2 assay std is 15.75 mg: well below the mean predictor
    # validate_1 spans 11 % of calibrate_1's spread: the intervals are calibrated on cross-validated training residuals
    assert bundle.metadata.intervals.method.startswith("cross-conformal") and "auto:" in summary["intervals"]["calibration"]
