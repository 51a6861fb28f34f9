"""The README's demo, headless, end to end: real broker, real worker, simulated analyzers, lab loop, hot swap."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

# simulated fault -> the dead-letter reason the worker must give it
FAULT_REASONS = {"nan_burst": {"non_finite"}, "saturated": {"saturated"}, "wrong_grid": {"wrong_grid"},
                 "garbage": {"unknown_format", "malformed_json", "malformed_binary"}}


RETRAIN_AFTER = 900
MIN_PAIRS = 40  # lab pairs behind every mean compared below


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
        # Every step waits for an event: the retrain starts after 900 joined lab values (line-1's whole test set of
        # 460 and line-2's share), and the run ends once both analyzers' predictions come from the retrained model.
        [sys.executable, "-m", "nirstream", "demo", "--duration", "10", "--rate", "20", "--retrain-after", str(RETRAIN_AFTER),
         "--reference-fraction", "1.0", "--timeout", "1200", "--port", "0", "--registry", str(base / "registry"),
         "--summary", str(summary_path)],
        capture_output=True, text=True, timeout=1500, env=env, cwd=base,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return {**json.loads(summary_path.read_text()), "registry": str(base / "registry"), "console": result.stdout}


def test_every_valid_spectrum_gets_a_prediction(demo):
    assert demo["unique_predictions"] == sum(demo["valid"].values()) > 400


def _offline_predictions(demo: dict, version: str):
    """``version``'s predictions of the replayed data set's clean spectra, by sample name; and the data set."""
    from nirstream.core.serving.predictor import Predictor
    from nirstream.core.artifacts.registry import ModelRegistry
    from nirstream.devtools.simulate import open_source

    dataset = open_source(demo["source"])
    values = Predictor(ModelRegistry(demo["registry"]).load(version)).predict(dataset.X).values[:, 0]  # one target
    return dict(zip(dataset.sample_names, values, strict=True)), dataset


def test_unperturbed_analyzer_tracks_the_offline_rmsep(demo):
    first = demo["first_version"]
    online = demo["online_rmsep"]["line-1"][first]
    predicted, dataset = _offline_predictions(demo, first)
    truth = dataset.target(demo["target"])
    offline = float(np.sqrt(np.mean((np.array([predicted[name] for name in dataset.sample_names]) - truth) ** 2)))
    assert online["n"] >= 400
    assert abs(online["rmsep"] - offline) <= 0.2 * offline, (online, offline)


def _first_model_pairs(demo: dict, analyzer: str) -> list[dict]:
    """Lab pairs of ``analyzer`` predicted by the first model, in the order they were joined."""
    return [p for p in demo["labelled"] if p["analyzer_id"] == analyzer and p["model_version"] == demo["first_version"]]


def _drift_shifts(demo: dict, analyzer: str) -> np.ndarray:
    """Per lab pair under the first model: its online prediction minus the same model's offline prediction of
    the same tablet's unperturbed spectrum. Paired, so the model's own error cancels: what is left is what the
    analyzer's drift did to the prediction."""
    clean, _ = _offline_predictions(demo, demo["first_version"])
    pairs = _first_model_pairs(demo, analyzer)
    names = [p["sample_id"].removeprefix(f"{analyzer}/").rsplit("/", 1)[0] for p in pairs]
    return np.array([p["predicted"][demo["target"]] - clean[name] for p, name in zip(pairs, names, strict=True)])


def test_drift_moves_the_drifting_analyzers_predictions_and_not_the_stable_ones(demo):
    # Robust to how good the quick model happens to be (a poor first model once made line-1's own RMSEP
    # as large as line-2's): compare each prediction with the same model on the same clean tablet.
    stable, drifting = _drift_shifts(demo, "line-1"), _drift_shifts(demo, "line-2")
    assert stable.size >= 400 and drifting.size >= 2 * MIN_PAIRS
    scale = demo["target_std"]
    early, late = np.abs(drifting[:MIN_PAIRS]).mean(), np.abs(drifting[-MIN_PAIRS:]).mean()
    assert late > 2 * early and late > 0.1 * scale, (early, late, scale)  # the band grows with time
    assert np.abs(stable).max() < 0.01 * scale  # line-1 replays the clean spectra (float32 rounding only)


def test_drifting_analyzer_outlier_fraction_rises(demo):
    before_swap = [t for t in demo["timeline"] if t["t"] < demo["swap"]["at"] and "nirstream_outlier_fraction" in t]
    late = before_swap[-1]["nirstream_outlier_fraction"]
    assert late["line-2"] > late["line-1"] + 0.2
    assert late["line-2"] > 2 * late["line-1"]


def test_retrain_learns_from_the_streams_lab_values(demo):
    assert demo["swap"]["labelled_used"] >= RETRAIN_AFTER


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


def _children(pid: int) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.add(int(entry))
            except (OSError, IndexError, ValueError):
                pass  # the process ended while we looked
    return found


def test_ctrl_c_stops_the_live_demo_and_every_process_it_started(demo, tmp_path):
    # the live (interactive) mode on the registry the headless demo left: it starts streaming at once
    import signal

    env = dict(os.environ, NIRSTREAM_LOG_DIR=str(tmp_path), TF_CPP_MIN_LOG_LEVEL="2")
    process = subprocess.Popen([sys.executable, "-m", "nirstream", "demo", "--port", "0", "--registry", demo["registry"]],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
                               start_new_session=True)
    for line in process.stdout:  # wait for the event: the stream is running
        if line.startswith("embedded broker"):
            break
    children = _children(process.pid)
    assert len(children) >= 2  # the broker and the worker
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole foreground group
    output, errors = process.communicate(timeout=60)
    assert process.returncode == 0, errors[-2000:]
    assert "stopped: broker, worker and training shut down" in output
    assert not any(alive(pid) for pid in children)
    assert "absl" not in output and "INFO" not in output  # the console shows the view; logs go to the file


def test_headless_console_shows_the_view_and_the_retrain_not_library_logs(demo):
    assert "retrained on" in demo["console"] and "lab-labelled spectra" in demo["console"]
    assert "absl" not in demo["console"] and " INFO " not in demo["console"]


def test_the_view_survives_a_worker_whose_port_is_closed(tmp_path):
    # Ctrl-C reaches the worker too: its port may close before the demo handles its own SIGINT
    from nirstream.devtools.demo import scrape
    from nirstream.devtools.worker_process import WorkerProcess

    assert scrape(WorkerProcess("127.0.0.1:1", tmp_path, None, tmp_path / "w.log")) == {}
