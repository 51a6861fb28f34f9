"""Dead readings in a calibration file: every split is screened with the worker's own screen before anything is
fitted, degenerate spectra are left out and listed, ``evaluate`` counts them as not predicted; and a failure after
fitting keeps the fitted model where the user can serve it. Real spectra (tecator as a plant's CSV), PLS only."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest

from nirstream.core.artifacts.registry import ModelRegistry
from nirstream.core.serving.predictor import Predictor
from tests.test_data_files import tecator_frame

PLANTED = {"train": "train", "validation": "val", "test": "test"}  # split -> its label in the file


def nirstream(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "nirstream", *args], capture_output=True, text=True, timeout=timeout)


def train_args(path, registry, reports):
    return ["train", "--data", str(path), "--id-column", "sample", "--split-column", "set", "--validation", "val",
            "--target", "fat", "--family", "pls", "--registry", str(registry), "--report-dir", str(reports)]


@pytest.fixture(scope="module")
def dead_readings(tmp_path_factory, tecator):
    """tecator.csv with one constant spectrum (a dead reading) in each split; returns (path, {split: (row, sample)})."""
    base = tmp_path_factory.mktemp("dead")
    frame = tecator_frame(tecator)
    channels = [c for c in frame.columns if c[0].isdigit()]
    planted = {}
    for split, label in PLANTED.items():
        rows = np.flatnonzero(frame["set"].to_numpy() == label)
        position = 3 if split == "train" else 5  # 1-based row within its split: 4, 6, 6
        frame.loc[rows[position], channels] = 3.0
        planted[split] = (position + 1, str(frame.loc[rows[position], "sample"]))
    frame.to_csv(base / "dead.csv", index=False)
    return base / "dead.csv", planted


@pytest.fixture(scope="module")
def trained(dead_readings, tmp_path_factory):
    path, _ = dead_readings
    base = tmp_path_factory.mktemp("trained")
    result = nirstream(*train_args(path, base / "registry", base / "reports"))
    assert result.returncode == 0, result.stderr[-3000:]
    return base, result


def test_training_leaves_out_each_dead_reading_and_lists_it_by_row_and_sample(dead_readings, trained):
    _, planted = dead_readings
    base, result = trained
    report = json.loads(next((base / "reports").glob("data-dead.csv-v1/report.json")).read_text())
    listed = {(s["split"], s["row"], s["sample"], s["reason"]) for s in report["left_out"]}
    assert listed == {(split, row, sample, "degenerate") for split, (row, sample) in planted.items()}
    assert report["n"] == {"train": 128, "validation": 42, "test": 42}
    assert report["not_predicted"] == {"test": {"degenerate": 1}}
    html = next((base / "reports").glob("data-dead.csv-v1/report.html")).read_text()
    for split, (row, sample) in planted.items():
        assert f"left out: {split} row {row} (sample {sample}): degenerate" in result.stdout
        assert f"<td>{split}</td><td>{row}</td><td>{sample}</td><td>degenerate</td>" in html
    assert np.isfinite(report["deployed"]["tests"]["test"]["fat"]["rmsep"])


def test_evaluate_counts_a_dead_reading_as_not_predicted_degenerate(dead_readings, trained, tmp_path):
    path, planted = dead_readings
    base, _ = trained
    evaluated = nirstream("evaluate", "--data", str(path), "--id-column", "sample", "--split-column", "set",
                          "--registry", str(base / "registry"), "--output", str(tmp_path / "figures.json"))
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    figures = json.loads((tmp_path / "figures.json").read_text())
    assert figures["not_predicted"] == {label: {"degenerate": 1} for label in PLANTED.values()}
    for split, (row, sample) in planted.items():
        assert {"split": PLANTED[split], "sample": sample, "reason": "degenerate"}.items() <= next(
            s for s in figures["left_out"] if s["split"] == PLANTED[split]).items()
    assert figures["tests"]["test"]["fat"]["n"] == 42 and np.isfinite(figures["tests"]["test"]["fat"]["rmsep"])
    assert "test         not predicted: degenerate 1" in evaluated.stdout


def test_a_failure_after_fitting_keeps_the_fitted_model_as_a_bundle_to_serve(dead_readings, tmp_path, tecator):
    path, _ = dead_readings
    unusable = tmp_path / "registry"
    unusable.write_text("a file where the registry directory should be")  # a real failure, after the fit
    result = nirstream(*train_args(path, unusable, tmp_path / "reports"))
    assert result.returncode == 2
    assert "training failed after fitting" in result.stderr
    location = re.search(r"version 1 of the registry (\S+):", result.stderr).group(1)
    assert location.startswith(str(tmp_path / "reports" / "recovered"))
    promoted = nirstream("models", "promote", "1", "--registry", location)
    assert promoted.returncode == 0, promoted.stderr[-2000:]
    predictor = Predictor(ModelRegistry(location).load())
    test = tecator.split("test")
    predicted = predictor.predict(test.X).values[:, predictor.targets.index("fat")]
    assert np.sqrt(np.mean((predicted - test.target("fat")) ** 2)) < 5  # a working fat model (fat spans 0-50 %)
