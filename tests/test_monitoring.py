"""Online monitoring: predictions joined with late lab values, rolling RMSEP/bias, labelled pairs."""

import numpy as np
import pytest

from nirstream.core.messages.reference import ReferenceMessage
from nirstream.stream.lab_join_store import OnlineMonitor, PendingPrediction
from tests.streaming import collect, decoded, produce, run


def pending(analyzer="line-1", value=10.0, at=0.0, flag="ok", **others):
    return PendingPrediction(analyzer, f"{analyzer}:1", "1", {"fat": value, **others}, flag, {}, np.zeros(3, np.float32), at)


def test_join_works_whichever_side_arrives_first():
    monitor = OnlineMonitor(retention_seconds=100)
    assert monitor.add_prediction("S1", pending(value=10.0, at=0)) is None
    pair = monitor.add_reference(ReferenceMessage(sample_id="S1", values={"fat": 9.0}), now=5)
    assert pair["error"] == pytest.approx({"fat": 1.0}) and pair["reference"] == {"fat": 9.0}
    assert monitor.add_reference(ReferenceMessage(sample_id="S2", values={"fat": 12.0}), now=6) is None
    pair = monitor.add_prediction("S2", pending(value=11.0, at=7))
    assert pair["error"] == pytest.approx({"fat": -1.0})
    stats = monitor.stats["line-1"]
    assert stats.rmsep("fat") == pytest.approx(1.0) and stats.bias("fat") == pytest.approx(0.0)


def test_several_targets_are_joined_and_tracked_each_on_its_own():
    monitor = OnlineMonitor()
    monitor.add_prediction("S1", pending(value=10.0, water=60.0, protein=18.0))
    pair = monitor.add_reference(ReferenceMessage(sample_id="S1", values={"fat": 9.0, "water": 63.0}))
    assert pair["error"] == pytest.approx({"fat": 1.0, "water": -3.0})  # protein: no lab value, not in the pair
    stats = monitor.stats["line-1"]
    assert stats.rmsep("water") == pytest.approx(3.0) and stats.bias("water") == pytest.approx(-3.0)
    assert stats.rmsep("fat") == pytest.approx(1.0) and np.isnan(stats.rmsep("protein"))


def test_old_and_excess_entries_are_forgotten():
    monitor = OnlineMonitor(retention_seconds=10, capacity=3)
    for i in range(5):
        monitor.add_prediction(f"S{i}", pending(at=i))
    assert list(monitor.predictions) == ["S2", "S3", "S4"]  # capacity
    monitor.add_prediction("S9", pending(at=13.5))
    assert list(monitor.predictions) == ["S4", "S9"]  # older than 10 s expired
    assert monitor.add_reference(ReferenceMessage(sample_id="S0", values={"fat": 1.0}), now=14) is None


def test_outlier_fraction_and_other_targets():
    monitor = OnlineMonitor(flag_window=4)
    monitor.add_flags(["a"] * 6, ["ok", "ok", "outlier", "warning", "ok", "ok"])
    assert monitor.stats["a"].outlier_fraction == pytest.approx(0.5)
    monitor.add_prediction("S1", pending())
    assert monitor.add_reference(ReferenceMessage(sample_id="S1", values={"water": 60.0})) is None


def test_worker_joins_lab_values_and_publishes_labelled_pairs(broker, registry, tecator, start_worker, topics):
    from tests.test_stream_worker import spectra_messages

    worker = start_worker()
    messages, rows = spectra_messages(tecator, 60, analyzers=("line-1", "line-2"))
    run(produce(broker.bootstrap_servers, topics.spectra, messages))
    predictions = decoded(run(collect(broker.bootstrap_servers, topics.predictions, 60)))
    references = [
        (p["analyzer_id"].encode(), ReferenceMessage(sample_id=p["sample_id"], analyzer_id=p["analyzer_id"],
                                                     values={"fat": float(tecator.target("fat")[p["sequence"] % 215])}).model_dump_json().encode())
        for p in predictions
    ]
    run(produce(broker.bootstrap_servers, topics.reference, references + [(b"line-1", b"not a reference")]))
    labelled = decoded(run(collect(broker.bootstrap_servers, topics.labelled, 60, settle=0.5)))
    assert len(labelled) == 60
    for pair in labelled:
        i = int(pair["message_id"].split(":")[1])
        assert pair["reference"]["fat"] == pytest.approx(tecator.target("fat")[i])
        assert pair["error"]["fat"] == pytest.approx(pair["predicted"]["fat"] - pair["reference"]["fat"])
        np.testing.assert_allclose(pair["values"], rows[i], rtol=1e-6)  # the spectrum travels for retraining
    errors = {a: [p["error"]["fat"] for p in labelled if p["analyzer_id"] == a] for a in ("line-1", "line-2")}
    for analyzer, errs in errors.items():
        assert worker.metric("nirstream_rolling_rmsep", analyzer=analyzer) == pytest.approx(np.sqrt(np.mean(np.square(errs))), rel=1e-6)
        assert worker.metric("nirstream_rolling_bias", analyzer=analyzer) == pytest.approx(np.mean(errs), rel=1e-6, abs=1e-9)
        assert worker.metric("nirstream_reference_pairs_total", analyzer=analyzer) == 30
    dead = decoded(run(collect(broker.bootstrap_servers, topics.deadletter, 1)))
    assert [d["reason"] for d in dead] == ["invalid_reference"]


def test_labelled_pairs_become_training_data(broker, registry, tecator, start_worker, topics, tmp_path):
    from nirstream.core.datasets import load_table
    from nirstream.core.messages.common import WavelengthGrid
    from tests.test_stream_worker import spectra_messages
    from nirstream.trainer.plant_pairs import export_labelled

    start_worker()
    messages, rows = spectra_messages(tecator, 20, analyzers=("line-1",))
    run(produce(broker.bootstrap_servers, topics.spectra, messages))
    predictions = decoded(run(collect(broker.bootstrap_servers, topics.predictions, 20)))
    references = [(b"line-1", ReferenceMessage(sample_id=p["sample_id"], values={"fat": float(p["sequence"])}).model_dump_json().encode())
                  for p in predictions]
    run(produce(broker.bootstrap_servers, topics.reference, references))
    assert len(run(collect(broker.bootstrap_servers, topics.labelled, 20))) == 20
    grid = WavelengthGrid.from_wavelengths(tecator.wavelengths)
    count = export_labelled(broker.bootstrap_servers, topics.labelled, ["fat"], grid, tmp_path / "labelled.csv")
    assert count == 20
    dataset = load_table(tmp_path / "labelled.csv", target_columns=["fat"], id_column="sample_id")
    order = np.argsort(dataset.target("fat"))
    np.testing.assert_allclose(dataset.X[order], rows, rtol=1e-6)  # the spectra as sent, float32 precision
    assert sorted(dataset.target("fat")) == list(range(20))
