"""``nirstream trainer`` as a real process against the real embedded broker, on tecator spectra:
every labelled pair is archived exactly once whatever is killed; a drifting process gets a retrained model that
the time-forward gate promotes and a running worker hot-swaps, with nobody calling a command; a retrain that
fails leaves the champion serving and is counted."""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from nirstream.core.messages.common import WavelengthGrid
from nirstream.core.messages.labelled import LabelledPair
from nirstream.core.serving.predictor import Predictor
from tests.streaming import WorkerProcess, produce, run

T0 = datetime(2026, 3, 1, tzinfo=UTC)
TIMEOUT = 240.0


@dataclass
class TrainerServiceProcess(WorkerProcess):
    store: Path | None = None

    def command(self) -> list[str]:
        return ["trainer", "--store", str(self.store)]

    def stored_ids(self) -> list[str]:
        if not self.store.exists():
            return []
        with sqlite3.connect(f"file:{self.store}?mode=ro", uri=True) as db:  # read-only: the service writes
            try:
                return [r[0] for r in db.execute("SELECT message_id FROM labelled_pairs")]
            except sqlite3.OperationalError:  # the service has not created its table yet
                return []

    def wait_for(self, condition, what: str, timeout: float = TIMEOUT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                found = condition()
            except OSError:  # /metrics not answering yet
                found = None
            if found not in (None, False):
                return found
            if self.process.poll() is not None:
                raise AssertionError(f"trainer service exited ({self.process.returncode}) waiting for {what}:\n"
                                     f"{self.log_tail()}")
            time.sleep(0.2)  # polling interval while waiting for an event, not a synchronisation sleep
        raise AssertionError(f"no {what} within {timeout:.0f} s; log:\n{self.log_tail()}")


def labelled(tecator, rows, spectra=None, predicted=None, analyzer="line-1", start=0, model_version="1",
             reference=None) -> list[bytes]:
    grid = WavelengthGrid.from_wavelengths(tecator.wavelengths)
    fat = tecator.y[:, tecator.target_names.index("fat")]
    spectra = tecator.X[rows] if spectra is None else spectra
    predicted = fat[rows] if predicted is None else predicted
    reference = fat[rows] if reference is None else reference
    return [LabelledPair(sample_id=f"S{start + i}", analyzer_id=analyzer, message_id=f"{analyzer}:{start + i}",
                         model_version=model_version, predicted={"fat": float(p)}, reference={"fat": float(y)},
                         error={"fat": float(p - y)}, flag="ok", measured_at=T0 + timedelta(hours=start + i),
                         grid=grid, values=[float(v) for v in x]).model_dump_json().encode()
            for i, (x, p, y) in enumerate(zip(spectra, predicted, reference, strict=True))]


def service(broker, registry, topics, tmp_path, name="trainer", **env) -> TrainerServiceProcess:
    settings = {"NIRSTREAM_CHECK_SECONDS": "1", "NIRSTREAM_WORKDIR": str(tmp_path / "retrains"), **env}
    return TrainerServiceProcess(broker.bootstrap_servers, registry.base, topics, tmp_path / f"{name}.log",
                                 extra_env=settings, store=tmp_path / "plant" / "pairs.sqlite")


def test_kill_9_while_pairs_stream_in_stores_each_message_id_exactly_once(broker, tmp_path, topics, tecator):
    from nirstream.core.artifacts.registry import ModelRegistry

    empty = ModelRegistry(tmp_path / "empty-registry")  # no champion: the service only archives
    messages = labelled(tecator, list(range(200)) * 2, start=0)[:300]  # 300 pairs, distinct message ids
    batches = [[(b"line-1", m) for m in messages[i:i + 20]] for i in range(0, len(messages), 20)]
    first = service(broker, empty, topics, tmp_path).start()
    for number, batch in enumerate(batches[:5], start=1):  # the stream flows: each batch arrives and is archived
        run(produce(broker.bootstrap_servers, topics.labelled, batch))
        first.wait_for(lambda n=number: len(first.stored_ids()) >= 20 * n, f"{20 * number} archived pairs")
    run(produce(broker.bootstrap_servers, topics.labelled, batches[5]))
    first.kill()  # SIGKILL while that batch is read, stored or committed
    killed_at = len(first.stored_ids())
    for batch in batches[6:]:  # the analyzers go on while the trainer is down
        run(produce(broker.bootstrap_servers, topics.labelled, batch))
    second = service(broker, empty, topics, tmp_path, name="trainer2")
    second.group_id = first.group_id
    second.start()
    try:
        ids = second.wait_for(lambda: (ids := second.stored_ids()) and len(set(ids)) >= 300 and ids, "300 stored pairs")
        assert len(ids) == len(set(ids)) == 300
        assert set(ids) == {f"line-1:{i}" for i in range(300)}
        assert 100 <= killed_at <= 120
        second.wait_ready()
        assert second.metric("nirstream_trainer_pairs_stored") == 300
        assert second.metric("nirstream_trainer_pairs_archived_total") == 300 - killed_at
    finally:
        second.stop()


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


@pytest.mark.parametrize("mode", ["propose"])
def test_a_proposal_waits_for_a_named_persons_approval(mode, tmp_path, registry, tecator):
    from nirstream.cli import main
    from nirstream.trainer.champion import approve_and_announce

    registry.propose("2", "time-forward gate passed", by="nirstream trainer", details={"gate": "time-forward"})
    with pytest.raises(ValueError, match="not waiting for approval"):
        approve_and_announce(registry, "1", "why not", by="Jane Doe")
    assert main(["models", "approve", "2", "--by", "Jane Doe", "--reason", "reviewed the gate figures",
                 "--registry", str(registry.base)]) == 0
    assert registry.champion() == "2"
    promotion = registry.history()[-1]
    assert (promotion.event, promotion.by) == ("promoted", "Jane Doe")
    assert promotion.details["approved_proposal"] == {"gate": "time-forward"}


def test_a_bad_promotion_is_rolled_back_by_the_guard(broker, registry, topics, tmp_path, tecator, rng):
    registry.promote("2", "an operator's promotion that turns out badly")
    fat = tecator.y[:, tecator.target_names.index("fat")]
    rows = list(range(40))
    good = fat[rows[:20]] + rng.normal(0, 0.5, 20)  # version 1's last lab pairs
    bad = fat[rows[20:]] + rng.normal(0, 5.0, 20)  # version 2's first lab pairs
    messages = (labelled(tecator, rows[:20], predicted=good, model_version="1")
                + labelled(tecator, rows[20:], predicted=bad, model_version="2", start=20))
    trainer = service(broker, registry, topics, tmp_path, NIRSTREAM_RETRAIN__MIN_NEW_PAIRS="1000",
                      NIRSTREAM_RETRAIN__BIAS_K="1000").start()
    try:
        trainer.wait_ready()
        run(produce(broker.bootstrap_servers, topics.labelled, [(b"line-1", m) for m in messages]))
        trainer.wait_for(lambda: trainer.metric("nirstream_trainer_rollbacks_total") >= 1, "an automatic rollback")
        assert registry.champion() == "1"
        rollback = registry.history()[-1]
        assert (rollback.event, rollback.by, rollback.details["from"]) == ("rolled_back", "nirstream trainer", "2")
        assert "promotion guard" in rollback.reason
        assert registry.audit.verify().intact
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


def test_no_correction_is_published_for_an_unbiased_analyzer(tmp_path, registry, tecator, rng):
    from nirstream.trainer.bias_correction import fit_bias_correction
    from nirstream.trainer.plant_store import PlantStore
    from nirstream.trainer.service_settings import GatePolicy, RetrainPolicy

    champion = Predictor(registry.load())
    rows = list(tecator.splits["test"])[:30]
    predicted = champion.predict(tecator.X[rows]).values[:, 0]
    with PlantStore(tmp_path / "pairs.sqlite") as store:
        unbiased = predicted + rng.normal(0, 1.0, len(rows))  # lab values scattered around what the model says
        store.add([LabelledPair.model_validate_json(m)
                   for m in labelled(tecator, rows, predicted=predicted, reference=unbiased)])
        correction = fit_bias_correction(store, champion, "line-1", RetrainPolicy(), GatePolicy(), by="test")
    assert correction.transfer is None and "does not help" in correction.reason
    assert correction.figures["fat"]["difference"]["high"] >= 0


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
