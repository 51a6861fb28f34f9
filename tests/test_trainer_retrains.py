"""The trainer service's retrains as real processes against the real embedded broker, on tecator spectra: a drifting
process is retrained, gated, promoted and hot-swapped with nobody calling a command; a worse candidate is rejected; a
failing retrain leaves the champion serving; a biased analyzer gets a slope/bias correction."""

from __future__ import annotations

import json

import numpy as np

from nirstream.core.serving.predictor import Predictor
from tests.streaming import produce, run
from tests.trainer_service_harness import TIMEOUT, labelled, service


def drifted(tecator, rng, rows) -> np.ndarray:
    """A new raw-material lot: an absorbing interferent band at 930 nm (EMSC does not model it)."""
    band = np.exp(-0.5 * ((tecator.wavelengths - 930.0) / 12.0) ** 2)
    return tecator.X[rows] + rng.uniform(0.05, 0.15, (len(rows), 1)) * band


def test_a_drifting_process_is_retrained_gated_promoted_and_hot_swapped_without_a_command(
        broker, registry, topics, tmp_path, tecator, rng, start_worker):
    champion = Predictor(registry.load())
    test_rows = list(tecator.splits["test"]) * 2  # 86 pairs: each test sample in two lots of the new material
    spectra = drifted(tecator, rng, test_rows)
    predicted = champion.predict(spectra).values[:, 0]
    worker = start_worker()
    trainer = service(broker, registry, topics, tmp_path, NIRSTREAM_GATE__MODE="automatic",
                      NIRSTREAM_RETRAIN__MIN_NEW_PAIRS="80",
                      NIRSTREAM_BASE_TRAINING=json.dumps({"protocol": "tecator", "family": "pls"})).start()
    try:
        trainer.wait_ready()
        run(produce(broker.bootstrap_servers, topics.labelled,
                    [(b"line-1", m) for m in labelled(tecator, test_rows, spectra, predicted)]))
        trainer.wait_for(lambda: trainer.metric("nirstream_trainer_gate_decisions_total") >= 1, "a gate decision")
        assert trainer.metric("nirstream_trainer_gate_decisions_total", decision="promoted") == 1, trainer.log_tail()
        new_champion = registry.champion()
        assert new_champion not in (None, "1")
        [promotion] = [e for e in registry.history() if e.event == "promoted" and e.version == new_champion]
        assert promotion.by == "nirstream trainer"
        assert promotion.details["previous"] == "1" and "time-forward gate" in promotion.reason
        candidate_rmsep = trainer.metric("nirstream_trainer_gate_rmsep", model="candidate", target="fat")
        champion_rmsep = trainer.metric("nirstream_trainer_gate_rmsep", model="champion", target="fat")
        assert candidate_rmsep < champion_rmsep
        worker.wait_for_log(f"serving model version {new_champion}", timeout=TIMEOUT)  # the worker swapped without a command
        assert registry.audit.verify().intact
    finally:
        trainer.stop()


def test_a_failing_retrain_leaves_the_champion_serving_and_is_counted(broker, registry, topics, tmp_path, tecator):
    trainer = service(broker, registry, topics, tmp_path, NIRSTREAM_RETRAIN__MIN_NEW_PAIRS="30",
                      NIRSTREAM_BASE_TRAINING=json.dumps({"data": {"path": str(tmp_path / "missing.csv")}})).start()
    try:
        trainer.wait_ready()
        run(produce(broker.bootstrap_servers, topics.labelled,
                    [(b"line-1", m) for m in labelled(tecator, list(range(40)))]))
        trainer.wait_for(lambda: trainer.metric("nirstream_trainer_retrains_total", outcome="failed") >= 1, "a failed retrain")
        assert registry.champion() == "1"
        assert trainer.metric("nirstream_trainer_retrains_total", outcome="succeeded") == 0
        assert "retrain failed" in trainer.log_path.read_text()
    finally:
        trainer.stop()


def test_a_biased_analyzer_gets_a_slope_bias_correction_that_its_newest_pairs_show_to_help(
        broker, registry, topics, tmp_path, tecator, rng):
    champion = Predictor(registry.load())
    rows = list(tecator.splits["test"])[:30]
    predicted = champion.predict(tecator.X[rows]).values[:, 0]
    shifted = predicted + 4.0 + rng.normal(0, 0.5, len(rows))  # lab values 4 % above what the model says
    trainer = service(broker, registry, topics, tmp_path, NIRSTREAM_GATE__MODE="automatic",
                      NIRSTREAM_RETRAIN__MIN_NEW_PAIRS="1000",  # only the bias can start a retrain, which fails:
                      NIRSTREAM_BASE_TRAINING=json.dumps({"data": {"path": str(tmp_path / "missing.csv")}})).start()
    try:
        trainer.wait_ready()
        run(produce(broker.bootstrap_servers, topics.labelled,
                    [(b"line-1", m) for m in labelled(tecator, rows, predicted=predicted, reference=shifted)]))
        trainer.wait_for(lambda: trainer.metric("nirstream_trainer_bias_corrections_total", outcome="published") >= 1,
                         "a published bias correction")
        assert trainer.metric("nirstream_trainer_retrains_total", outcome="failed") == 1  # the first response follows
        transfer = registry.load_transfer("line-1")
        assert transfer.metadata.method == "sbc" and transfer.metadata.model_version == "1"
        corrected = transfer.correct(predicted[-10:, None], ("fat",))[:, 0]
        assert np.sqrt(np.mean((corrected - shifted[-10:]) ** 2)) < np.sqrt(np.mean((predicted[-10:] - shifted[-10:]) ** 2))
        assert registry.champion() == "1"  # no retrain: the correction was the first response
    finally:
        trainer.stop()


def test_a_candidate_worse_on_the_newest_pairs_is_rejected_and_the_champion_stays(broker, topics, tmp_path, tecator):
    from nirstream.core.artifacts.registry import ModelRegistry
    from nirstream.trainer.train_settings import TrainSettings
    from nirstream.trainer.training_run import run_training

    base = {"protocol": "tecator", "targets": ["fat"], "family": "pls"}
    registry = ModelRegistry(tmp_path / "registry")
    run_training(TrainSettings(**base, registry=registry.base, report_dir=tmp_path / "first"), verbose=0)
    assert registry.champion() == "1"
    rows = list(tecator.splits["test"]) * 2  # 86 pairs; the 66 older ones carry another sample's lab value
    fat = tecator.y[rows, tecator.target_names.index("fat")]
    reference = np.concatenate([np.random.default_rng(7).permutation(fat[:66]), fat[66:]])
    trainer = service(broker, registry, topics, tmp_path, NIRSTREAM_GATE__MODE="automatic",
                      NIRSTREAM_RETRAIN__MIN_NEW_PAIRS="80", NIRSTREAM_RETRAIN__BIAS_K="1000",
                      NIRSTREAM_BASE_TRAINING=json.dumps(base)).start()
    try:
        trainer.wait_ready()
        run(produce(broker.bootstrap_servers, topics.labelled,
                    [(b"line-1", m) for m in labelled(tecator, rows, reference=reference)]))
        trainer.wait_for(lambda: trainer.metric("nirstream_trainer_gate_decisions_total") >= 1, "a gate decision")
        assert trainer.metric("nirstream_trainer_gate_decisions_total", decision="rejected") == 1
        assert trainer.metric("nirstream_trainer_candidates_rejected_in_a_row") == 1
        assert registry.champion() == "1"
        rejection = [e for e in registry.history() if e.event == "rejected"][-1]
        assert rejection.by == "nirstream trainer" and "time-forward gate" in rejection.reason
        verdict = rejection.details["verdicts"]["fat"]
        assert not verdict["passed"] and verdict["difference"]["high"] >= 0
    finally:
        trainer.stop()
