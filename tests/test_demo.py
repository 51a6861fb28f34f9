"""The README's demo, headless, end to end: real broker, real worker, simulated analyzers, lab loop, hot swap."""

import json
import os
import subprocess
import sys

import pytest

# simulated fault -> the dead-letter reason the worker must give it
FAULT_REASONS = {"nan_burst": {"non_finite"}, "saturated": {"saturated"}, "wrong_grid": {"wrong_grid"},
                 "garbage": {"unknown_format", "malformed_json", "malformed_binary"}}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    base = tmp_path_factory.mktemp("demo")
    summary_path = base / "summary.json"
    env = dict(os.environ, NIRSTREAM_LOG_DIR=str(base), TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(
        # 20/s per analyzer replays line-1's whole test set (460) before the swap starts at 25 s
        [sys.executable, "-m", "nirstream", "demo", "--duration", "70", "--rate", "20", "--swap-after", "25",
         "--reference-fraction", "1.0", "--port", "0", "--registry", str(base / "registry"), "--summary", str(summary_path)],
        capture_output=True, text=True, timeout=600, env=env, cwd=base,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads(summary_path.read_text())


def test_every_valid_spectrum_gets_a_prediction(demo):
    assert demo["unique_predictions"] == sum(demo["valid"].values()) > 400


def test_unperturbed_analyzer_tracks_the_offline_rmsep(demo):
    first = demo["first_version"]
    online = demo["online_rmsep"]["line-1"][first]
    offline = demo["offline_rmsep"][first]
    assert online["n"] >= 400
    assert abs(online["rmsep"] - offline) <= 0.2 * offline, (online, offline)


def test_drifting_analyzer_bias_and_outlier_fraction_rise(demo):
    before_swap = [t for t in demo["timeline"] if t["t"] < demo["swap"]["at"] and "nirstream_rolling_bias" in t]
    early, late = before_swap[0], before_swap[-1]
    assert abs(late["nirstream_rolling_bias"]["line-2"]) > abs(early["nirstream_rolling_bias"]["line-2"]) + 2.0
    assert late["nirstream_outlier_fraction"]["line-2"] > early["nirstream_outlier_fraction"]["line-2"] + 0.2
    assert late["nirstream_outlier_fraction"]["line-2"] > 2 * late["nirstream_outlier_fraction"]["line-1"]


def test_injected_faults_land_in_dead_letters(demo):
    assert sum(demo["faults"].values()) >= 1
    assert sum(demo["dead_letters"].values()) == sum(demo["faults"].values())
    allowed = set().union(*(FAULT_REASONS[kind] for kind in demo["faults"]))
    assert set(demo["dead_letters"]) <= allowed


def test_mid_demo_hot_swap_shows_in_predictions_and_metrics(demo):
    first, second = demo["first_version"], demo["swap"]["version"]
    assert second != first
    for analyzer in ("line-1", "line-2"):
        assert demo["versions"][analyzer] == [first, second]
    versions_seen = [t["nirstream_model_version"][""] for t in demo["timeline"] if "nirstream_model_version" in t]
    assert versions_seen[0] == int(first) and versions_seen[-1] == int(second)


def test_all_processes_are_gone(demo):
    assert not any(alive(pid) for pid in demo["pids"].values())
