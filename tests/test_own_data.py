"""A plant's own data end to end, through the commands a user types: a CSV file -> train -> report -> evaluate ->
promote -> a worker predicting every target with its interval. Real spectra only (tecator as CSV); JCAMP-DX,
Parquet and the PLS family are in tests/test_own_data_families.py."""

import json
import subprocess
import sys

import numpy as np
import pytest

from nirstream.core.messages.prediction import PredictionMessage
from nirstream.core.serving.predictor import Predictor
from nirstream.core.artifacts.registry import ModelRegistry
from tests.streaming import collect, decoded, produce, run
from tests.test_data_files import TARGETS, tecator_frame


def nirstream(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "nirstream", *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def plant(tmp_path_factory, tecator):
    """``nirstream train --data tecator.csv`` with a split column, three targets, units, as a user would."""
    base = tmp_path_factory.mktemp("plant")
    tecator_frame(tecator).to_csv(base / "meat.csv", index=False)
    trained = nirstream("train", "--data", str(base / "meat.csv"), "--id-column", "sample", "--split-column", "set",
                        "--validation", "val", *[f"--target={t}" for t in TARGETS], "--unit", "fat=%", "--unit", "water=%",
                        "--unit", "protein=%", "--quick", "--no-pls", "--registry", str(base / "registry"),
                        "--report-dir", str(base / "reports"))
    assert trained.returncode == 0, trained.stderr[-3000:]
    return base, (trained.stdout, trained.stderr)


def test_training_on_a_plants_file_reports_every_target_with_intervals(plant, tecator):
    base, (stdout, stderr) = plant
    for line in (stdout + stderr).splitlines():  # issue 28: TensorFlow's and absl's lines go to a log file
        assert not any(word in line for word in ("absl", "oneDNN", "I0000", "retracing")), line
    assert "version 1: no champion yet (validation RMSEP water" in stdout
    for target in TARGETS:
        assert f"CNN  {target}" in stdout and "95% CI" in stdout and "interval ±" in stdout
    report = json.loads(next((base / "reports").glob("data-meat.csv-v1/report.json")).read_text())
    assert report["n"] == {"train": 129, "validation": 43, "test": 43}
    assert "split column 'set'" in report["data_choices"]["splits"] and report["promotion"]["gate_data"] == "validation"
    bundle = ModelRegistry(base / "registry").load("1")
    assert bundle.metadata.targets == TARGETS and bundle.metadata.units == {t: "%" for t in TARGETS}
    assert bundle.metadata.dataset_fingerprint == tecator.split("train").fingerprint()  # exactly the train rows


def test_evaluate_on_a_file_and_on_a_file_with_another_grid(plant, tecator, tmp_path):
    base, _ = plant
    registry = str(base / "registry")
    evaluated = nirstream("evaluate", "--data", str(base / "meat.csv"), "--split-column", "set", "--registry", registry,
                          "--output", str(tmp_path / "figures.json"))
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    figures = json.loads((tmp_path / "figures.json").read_text())
    report = json.loads(next((base / "reports").glob("data-meat.csv-v1/report.json")).read_text())
    for target in TARGETS:  # the same numbers as the training report, through the worker's code path
        assert figures["tests"]["test"][target]["rmsep"] == pytest.approx(report["cnn"]["tests"]["test"][target]["rmsep"], rel=1e-4)
        # (float32 kernels may differ in the last digits: a residual right at the interval's edge may flip)
        assert figures["tests"]["test"][target]["interval_coverage"] == pytest.approx(
            report["intervals"]["test_coverage"]["test"][target]["coverage"], abs=1.01 / 43)
    # the same spectra on a finer grid (2x the channels, wider): interpolated back, nearly the same figures
    from nirstream.core.chemometrics.resampling import resample

    finer = np.linspace(845.0, 1055.0, 211)
    frame = tecator_frame(tecator, split=False)[["sample", *TARGETS]]
    on_finer = resample(tecator.X, tecator.wavelengths, finer)
    for j, w in enumerate(finer):
        frame[f"{w:.3f}"] = on_finer[:, j]
    frame.to_csv(tmp_path / "finer.csv", index=False)
    from nirstream.core.datasets.tabular import DataFileError
    from nirstream.trainer.evaluation import evaluate_data

    predictor = Predictor(ModelRegistry(registry).load("1"))  # what `evaluate` runs, without another process
    other = evaluate_data(predictor, {"path": tmp_path / "finer.csv"})
    assert "linearly interpolated onto the model's 100 channels" in other["resampled"]
    for target in TARGETS:
        assert other["tests"]["data"][target]["n"] == 215
        assert other["tests"]["data"][target]["rmsep"] == pytest.approx(figures["tests"]["test"][target]["rmsep"], rel=0.5)
    with pytest.raises(DataFileError, match=r"no column\(s\) \['nope'\]"):
        evaluate_data(predictor, {"path": tmp_path / "finer.csv", "targets": ["fat"], "id_column": "nope"})


def test_a_config_file_holds_the_same_options_and_refuses_unknown_ones(plant, tmp_path):
    base, _ = plant
    config = tmp_path / "train.toml"
    config.write_text(f'quick = true\npls = false\n[data]\npath = "{base / "meat.csv"}"\nsplit_column = "set"\n'
                      'validation = "val"\ntargets = ["fat"]\nsplitcolumn = "x"\n')
    refused = nirstream("train", "--config", str(config), "--registry", str(tmp_path / "registry"))
    assert refused.returncode == 2 and "unknown data setting(s) splitcolumn" in refused.stderr


@pytest.fixture
def registry(plant):
    """The worker fixtures serve the model trained on the plant's file."""
    import shutil

    base, _ = plant
    return ModelRegistry(shutil.copytree(base / "registry", base.parent / f"{base.name}-worker-registry", dirs_exist_ok=True))


def test_the_worker_predicts_every_target_with_its_interval(registry, broker, topics, tecator, start_worker):
    from tests.test_stream_worker import spectra_messages

    worker = start_worker()
    messages, rows = spectra_messages(tecator, 30)
    run(produce(broker.bootstrap_servers, topics.spectra, messages))
    predictions = [PredictionMessage.model_validate(p) for p in decoded(run(collect(broker.bootstrap_servers, topics.predictions, 30)))]
    predictor = Predictor(registry.load("1"))
    offline = predictor.predict(rows).values
    half = predictor.intervals.half_width
    for message in predictions:
        i = message.sequence
        assert list(message.predictions) == TARGETS and message.units == {t: "%" for t in TARGETS}
        assert message.ensemble_spread is None  # --quick trains one network: no members to disagree
        for j, target in enumerate(TARGETS):
            assert message.predictions[target] == pytest.approx(offline[i, j], rel=1e-5, abs=1e-5)
            interval = message.intervals[target]
            assert interval.coverage == 0.9
            assert interval.low == pytest.approx(offline[i, j] - half[target], abs=1e-4)
            assert interval.high == pytest.approx(offline[i, j] + half[target], abs=1e-4)
    for target in TARGETS:
        assert worker.metric("nirstream_model_interval_half_width", target=target, coverage="0.9") == pytest.approx(half[target])
