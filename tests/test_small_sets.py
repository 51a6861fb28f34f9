"""Small calibration sets (issue 28): from 10 spectra up ``nirstream train --data`` trains; without enough spectra for
hold-out validation, cross-validation on the training split chooses (the small-set rule, ``trainer/small_sets.py``);
the test split is optional; every RMSEP stands beside the mean predictor's; no framework lines reach the console.
Real spectra: tecator as a plant's CSV."""

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from nirstream.core.artifacts.registry import ModelRegistry
from nirstream.trainer.small_sets import CNN_MIN_TRAINING, MIN_VALIDATION, cnn_refusal, small_set_reason
from tests.test_data_files import tecator_frame

FRAMEWORK_LINES = ("absl", "oneDNN", "I0000", "retracing", "tensorflow", "Warning:")


def nirstream(*args, cwd=None, timeout=600, **env):
    return subprocess.run([sys.executable, "-m", "nirstream", *args], capture_output=True, text=True, timeout=timeout,
                          cwd=cwd, env={**os.environ, **env})


def assert_no_framework_lines(result):
    for line in (result.stdout + result.stderr).splitlines():
        assert not any(word in line for word in FRAMEWORK_LINES), line


@pytest.fixture(scope="module")
def fifteen(tmp_path_factory, tecator, signing_keys):
    """15 tecator spectra as a plant's whole calibration file (no split column); the other 200 kept for later.
    Trained with a signing key: the bundle is signed (docs/security.md)."""
    base = tmp_path_factory.mktemp("fifteen")
    frame = tecator_frame(tecator, split=False)
    frame.iloc[:15].to_csv(base / "calibration.csv", index=False)
    frame.iloc[15:].to_csv(base / "later.csv", index=False)
    trained = nirstream("train", "--data", "calibration.csv", "--target", "fat", "--id-column", "sample", "--unit", "fat=%",
                        "--registry", "registry", "--report-dir", "reports", cwd=base,
                        NIRSTREAM_SIGNING_KEY_FILE=str(signing_keys.private))
    assert trained.returncode == 0, trained.stderr[-3000:]
    return base, trained


def test_fifteen_spectra_train_and_deploy_by_cross_validation(fifteen):
    base, trained = fifteen
    assert_no_framework_lines(trained)
    assert (base / "artifacts" / "frameworks.log").read_text()  # TensorFlow's start-up lines went there instead
    report = json.loads((base / "reports" / "data-calibration.csv-v1" / "report.json").read_text())
    assert report["n"] == {"train": 15, "validation": 0}
    assert "15 samples and no split column" in report["small_set"] and "small-set rule" in report["data_choices"]
    assert "small set: 15 samples" in trained.stdout
    deployed = report["deployed"]
    assert deployed["family"] == "pls" and deployed["chosen_on"] == "cross-validation"
    assert "the CNN is not fitted" in deployed["reason"] and "mean predictor" in deployed["reason"]
    assert deployed["validation_rmsep"]["pls"]["fat"] < deployed["mean_predictor_validation_rmsep"]["fat"]
    assert report["promotion"]["gate_data"] == "training (out-of-fold)" and report["promotion"]["promote"]
    assert report["intervals"]["n_calibration"] == 15 and "out-of-fold" in report["intervals"]["calibration"]
    registry = ModelRegistry(base / "registry")
    assert registry.champion() == "1" and registry.load("1").metadata.training["small_set"] == report["small_set"]
    assert (registry.path("1") / "MANIFEST.sig").exists()


def test_the_deployed_small_set_model_predicts_the_rest_of_the_set_better_than_the_mean(fifteen, tecator, signing_keys):
    """`evaluate` as the worker would: only the trusted signature is accepted."""
    base, _ = fifteen
    evaluated = nirstream("evaluate", "--data", "later.csv", "--target", "fat", "--id-column", "sample",
                          "--registry", "registry", "--output", "later.json", cwd=base,
                          NIRSTREAM_ALLOW_UNSIGNED="false", NIRSTREAM_TRUSTED_KEYS_DIR=str(signing_keys.trusted))
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    assert_no_framework_lines(evaluated)
    figures = json.loads((base / "later.json").read_text())["tests"]["data"]["fat"]
    later = pd.read_csv(base / "later.csv")["fat"].to_numpy()
    mean_predictor = float(np.sqrt(np.mean((later - pd.read_csv(base / "calibration.csv")["fat"].mean()) ** 2)))
    assert figures["n"] == 200 and figures["rmsep_ci95"]["high"] < 0.3 * mean_predictor


def test_a_file_with_train_and_validation_rows_only_trains_without_a_test(tecator, tmp_path):
    frame = tecator_frame(tecator)
    frame[frame["set"] != "test"].to_csv(tmp_path / "no-test.csv", index=False)
    trained = nirstream("train", "--data", str(tmp_path / "no-test.csv"), "--id-column", "sample", "--split-column", "set",
                        "--validation", "val", "--target", "fat", "--family", "pls", "--registry", str(tmp_path / "registry"),
                        "--report-dir", str(tmp_path / "reports"))
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert_no_framework_lines(trained)
    report = json.loads(next((tmp_path / "reports").glob("*/report.json")).read_text())
    assert report["n"] == {"train": 129, "validation": 43} and report["small_set"] is None
    assert report["deployed"]["tests"] == {} and "no 'test' rows" in report["data_choices"]["splits"]
    assert report["promotion"]["gate_data"] == "validation" and report["deployed"]["chosen_on"] == "validation"


def test_four_validation_spectra_join_training_and_the_test_rows_stand_beside_the_mean_predictor(tecator, tmp_path):
    """The issue's file: 'the validation split has 4 spectra; at least 5 needed' used to refuse it."""
    frame = tecator_frame(tecator)
    labels = np.array(["train"] * 26 + ["validation"] * 4 + ["test"] * 20, dtype=object)
    small = frame.iloc[:50].assign(set=labels)
    small.to_csv(tmp_path / "line.csv", index=False)
    trained = nirstream("train", "--data", str(tmp_path / "line.csv"), "--id-column", "sample", "--split-column", "set",
                        "--target", "fat", "--registry", str(tmp_path / "registry"), "--report-dir", str(tmp_path / "reports"))
    assert trained.returncode == 0, trained.stderr[-3000:]
    report = json.loads(next((tmp_path / "reports").glob("*/report.json")).read_text())
    assert report["n"] == {"train": 30, "validation": 0, "test": 20}
    assert report["small_set"].startswith("4 validation spectra: fewer than the 10")
    test_fat = small[labels == "test"]["fat"].to_numpy()
    expected_mean = float(np.sqrt(np.mean((test_fat - small[labels != "test"]["fat"].mean()) ** 2)))
    deployed = report["deployed"]["tests"]["test"]["fat"]
    assert deployed["mean_predictor_rmsep"] == pytest.approx(expected_mean) == report["mean_predictor"]["test"]["fat"]
    assert deployed["rmsep"] < expected_mean
    assert report["cnn_minus_pls"] == {}  # no CNN competed: no CNN - PLS line
    assert "mean predictor" in trained.stdout and "CNN − PLS" not in trained.stdout
    html = next((tmp_path / "reports").glob("*/report.html")).read_text()
    assert "<th>mean predictor</th>" in html and "No CNN and PLS candidates competed" in html


def test_the_small_set_rule_and_the_cnn_rule():
    assert small_set_reason(MIN_VALIDATION, 200, automatic=False) is None
    assert "9 validation spectra" in small_set_reason(MIN_VALIDATION - 1, 200, automatic=False)
    assert "49 samples and no split column" in small_set_reason(0, 49, automatic=True)
    assert small_set_reason(MIN_VALIDATION, 50, automatic=True) is None
    assert cnn_refusal(CNN_MIN_TRAINING, cross_validated=False) is None
    assert "49 training spectra" in cnn_refusal(CNN_MIN_TRAINING - 1, cross_validated=False)
    assert "no hold-out validation split" in cnn_refusal(500, cross_validated=True)


def test_the_cnn_asked_for_on_a_small_set_is_refused_with_the_rule(fifteen):
    base, _ = fifteen
    refused = nirstream("train", "--data", "calibration.csv", "--target", "fat", "--family", "cnn",
                        "--registry", "registry-cnn", cwd=base)
    assert refused.returncode == 2 and "the CNN is not fitted" in refused.stderr and "--family pls" in refused.stderr
