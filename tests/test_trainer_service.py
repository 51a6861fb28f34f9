"""``nirstream trainer`` as a real process against the real embedded broker, on tecator spectra: every labelled pair is
archived exactly once whatever is killed; a bad promotion is rolled back by the guard; a proposal waits for a named
person; no correction for an unbiased analyzer."""

from __future__ import annotations


import pytest

from nirstream.core.messages.labelled import LabelledPair
from nirstream.core.serving.predictor import Predictor
from tests.streaming import produce, run
from tests.trainer_service_harness import labelled, service


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
