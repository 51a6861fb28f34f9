"""The learning loop offline: every lab-referenced spectrum is predicted only by a model trained on lab values that had
arrived before it, the loop beats the static model under the simulator's drift, and ``nirstream evaluate
--prequential`` writes its JSON and PNG. Real spectra: tecator (train = calibration part; monitor + test replayed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmarks.prequential import drifting_stream
from nirstream.trainer.prequential import PrequentialSettings, base_model_from_calibration, run_prequential
from nirstream.trainer.prequential_data import load_time_ordered
from nirstream.trainer.service_settings import GatePolicy, RetrainPolicy
from nirstream.trainer.training_window import TrainingWindow

REPO = Path(__file__).resolve().parent.parent
DRIFT_END = 0.1  # the band's height at the end, in standard deviations of the spectra
SETTINGS = PrequentialSettings(retrain=RetrainPolicy(min_new_pairs=15, min_interval_minutes=30),
                               gate=GatePolicy(holdout_pairs=10), windows=("all", "recent-30"))


def tecator_stream(tecator, drift_end: float, lab_every: int = 1, delay_hours: float = 0.5):
    return drifting_stream(tecator.split("train"), tecator.split("monitor", "test"), drift_end=drift_end, minutes=10,
                           lab_every=lab_every, lab_delay_hours=delay_hours, seed=0, target="fat")


@pytest.fixture(scope="module")
def drifted_run(tecator):
    data = tecator_stream(tecator, DRIFT_END)
    base, _ = base_model_from_calibration(data, SETTINGS)
    return data, run_prequential(data, base, SETTINGS)


def test_each_spectrum_is_predicted_only_with_lab_values_that_had_arrived(drifted_run):
    data, result = drifted_run
    versions = {v.version: v for v in result.versions}
    assert len(versions) > 1, "no retrain was promoted: the cut-offs below would test nothing"
    scored = [s for s in result.steps if np.isfinite(s.reference)]
    assert len(scored) == result.figures["pairs"] == (~data.calibration).sum()
    for step in result.steps:
        model = versions[step.version]
        assert model.serving_from <= step.time
        assert model.trained_until <= step.time  # the recorded cut-off
        assert step.row not in model.training_rows
        plant_rows = [r for r in model.training_rows if not data.calibration[r]]
        assert all(data.lab_times[r] <= model.serving_from for r in plant_rows)
    # the loop's newest model trained on pairs its predecessor had predicted, not on the calibration part alone
    assert len(result.versions[-1].training_rows) > data.calibration.sum()


def test_the_loop_beats_the_static_model_under_drift_by_its_interval(drifted_run):
    _, result = drifted_run
    difference = result.figures["loop_minus_static"]
    assert difference["high"] < 0, difference
    assert result.figures["rmsep"]["loop"]["rmsep"] < result.figures["rmsep"]["mean"]["rmsep"]


def test_recent_windows_forget_or_weigh_the_older_pairs():
    pairs = np.arange(10)
    assert TrainingWindow.parse("all").rows(pairs).tolist() == pairs.tolist()
    assert TrainingWindow.parse("recent-3").rows(pairs).tolist() == [7, 8, 9]
    assert sorted(TrainingWindow.parse("recent-3-x2").rows(pairs).tolist()) == [*range(7), 7, 7, 8, 8, 9, 9]
    with pytest.raises(ValueError, match="recent-N"):
        TrainingWindow.parse("recent-0")


def test_the_cli_writes_json_and_png_and_lab_values_wait_for_their_delay(tecator, tmp_path):
    data = tecator_stream(tecator, DRIFT_END, lab_every=2)
    frame = pd.DataFrame(data.X, columns=[f"{w:.10g}" for w in data.wavelengths])
    frame.insert(0, "fat", data.reference)
    frame.insert(0, "measured", pd.Timestamp("2026-01-05T06:00Z") + pd.to_timedelta(data.times, unit="s"))
    path = tmp_path / "line-1.csv"
    frame.to_csv(path, index=False)
    loaded = load_time_ordered(path, "measured", lab_delay=1800)
    assert np.allclose(loaded.lab_times[loaded.labelled] - loaded.times[loaded.labelled], 1800)
    calibration = int(data.calibration.sum())
    output = tmp_path / "out" / "line-1.json"
    result = subprocess.run([sys.executable, "-m", "nirstream", "evaluate", "--prequential", str(path), "--time-column",
                             "measured", "--lab-delay", "30m", "--calibration-pairs", str(calibration), "--output",
                             str(output)], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "learning loop" in result.stdout and "loop - static" in result.stdout
    written = json.loads(output.read_text())
    assert written["figures"]["pairs"] == int(np.isfinite(data.reference[~data.calibration]).sum())
    assert written["provenance"]["seeds"] == [0]
    assert output.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    refused = subprocess.run([sys.executable, "-m", "nirstream", "evaluate", "--prequential", str(path), "--time-column",
                              "measured", "--calibration-pairs", "5"], capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "--lab-delay" in refused.stderr
