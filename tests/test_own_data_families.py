"""A plant's own data, the other file kinds and model families: a JCAMP-DX folder (Kennard-Stone split, gated on
validation), a set where PLS must win (a PLS bundle served by a worker), the tablets as Parquet. Real spectra only.
Apart from tests/test_own_data.py so that the two run in parallel."""

import json

import numpy as np
import pytest

from nirstream.core.messages.prediction import PredictionMessage
from nirstream.core.serving.predictor import Predictor
from nirstream.core.artifacts.registry import ModelRegistry
from tests.conftest import requires_tablets
from tests.streaming import collect, decoded, produce, run
from tests.test_data_files import TARGETS, tecator_frame, write_jcamp


def test_a_jcamp_folder_trains_and_promotion_is_gated_on_validation(tecator, tmp_path):
    from nirstream.trainer.data_splits import DataSource
    from nirstream.trainer.train_settings import TrainSettings
    from nirstream.trainer.training_run import run_training

    folder = tmp_path / "spectra"
    folder.mkdir()
    for i in range(tecator.n_samples):
        write_jcamp(folder / f"{tecator.sample_names[i]}.jdx", tecator.sample_names[i], tecator.wavelengths, tecator.X[i])
    tecator_frame(tecator, split=False)[["sample", *TARGETS]].to_csv(tmp_path / "lab.csv", index=False)
    source = DataSource(path=folder, references=tmp_path / "lab.csv", targets=["fat"])  # no split column: Kennard-Stone
    settings = TrainSettings(data=source, quick=True, epochs=10, pls=False, registry=tmp_path / "registry",
                             report_dir=tmp_path / "reports")
    first = run_training(settings, verbose=0)
    assert first["n"] == {"train": 129, "validation": 43, "test": 43}
    assert "Kennard–Stone" in first["data_choices"]["splits"] and first["promotion"]["promote"]
    # a second run with a margin no model can meet is rejected on the validation figures, whatever the test says
    second = run_training(settings.model_copy(update={"promote_margin": 0.9, "seed": 1}), verbose=0)
    decision = second["promotion"]
    assert not decision["promote"] and decision["gate_data"] == "validation"
    validation_rmsep = Predictor(ModelRegistry(settings.registry).load("2"))
    assert decision["candidate_rmsep"]["fat"] == pytest.approx(second_validation_rmsep(validation_rmsep, settings), rel=1e-6)


def test_where_pls_wins_on_validation_the_deployed_bundle_is_pls_and_a_worker_serves_it(broker, tecator, tmp_path):
    """Tecator protein: a few dozen spectra, a near-linear constituent. The --quick CNN cannot match CV-PLS there."""
    from tests.streaming import WorkerProcess, unique_topics
    from tests.test_stream_worker import spectra_messages
    from nirstream.trainer.data_splits import DataSource
    from nirstream.trainer.train_settings import TrainSettings
    from nirstream.trainer.training_run import run_training

    tecator_frame(tecator).to_csv(tmp_path / "meat.csv", index=False)
    source = DataSource(path=tmp_path / "meat.csv", targets=["protein"], split_column="set", validation="val")
    summary = run_training(TrainSettings(data=source, quick=True, epochs=10, registry=tmp_path / "registry", report_dir=tmp_path),
                           verbose=0)
    deployed = summary["deployed"]
    assert deployed["family"] == "pls", deployed["reason"]
    assert deployed["validation_rmsep"]["pls"]["protein"] < deployed["validation_rmsep"]["cnn"]["protein"]
    assert deployed["pls_variant"] in deployed["pls_variants_tried"] and deployed["latent_variables"]["protein"] >= 1
    registry = ModelRegistry(tmp_path / "registry")
    assert not (registry.path("1") / "model.keras").exists()  # weights in arrays.npz: no network, no pickle
    predictor = Predictor(registry.load("1"))
    assert predictor.intervals is not None and not predictor.is_ensemble

    topics = unique_topics()
    worker = WorkerProcess(broker.bootstrap_servers, registry.base, topics, tmp_path / "worker.log").start()
    try:
        worker.wait_ready()
        messages, rows = spectra_messages(tecator, 20)
        run(produce(broker.bootstrap_servers, topics.spectra, messages))
        predictions = [PredictionMessage.model_validate(p) for p in decoded(run(collect(broker.bootstrap_servers, topics.predictions, 20)))]
    finally:
        worker.stop()
    offline = predictor.predict(rows).values[:, 0]
    for message in predictions:
        assert message.predictions["protein"] == pytest.approx(offline[message.sequence], rel=1e-6)
        assert message.intervals["protein"].low < message.predictions["protein"] < message.intervals["protein"].high
        assert message.outlier is not None


def second_validation_rmsep(predictor: Predictor, settings) -> float:
    from nirstream.trainer.training_data import load_training_protocol

    protocol = load_training_protocol(settings)
    predicted = predictor.predict(protocol.validation.X).values[:, 0]
    return float(np.sqrt(np.mean((predicted - protocol.validation.target("fat")) ** 2)))


@requires_tablets
@pytest.mark.tablets
def test_the_tablets_as_parquet_with_their_own_split(tmp_path):
    import pandas as pd

    from nirstream.core.datasets import load_tablets

    tablets = load_tablets(1)
    frame = pd.DataFrame(tablets.X, columns=[f"{w:g}" for w in tablets.wavelengths])
    labels = np.empty(tablets.n_samples, dtype=object)
    for name, rows in tablets.splits.items():
        labels[rows] = name
    frame.insert(0, "split", labels)
    for target in tablets.target_names:
        frame.insert(0, target, tablets.target(target))
    frame.to_parquet(tmp_path / "tablets.parquet")
    from nirstream.trainer.data_splits import DataSource
    from nirstream.trainer.train_settings import TrainSettings
    from nirstream.trainer.training_run import run_training

    source = DataSource(path=tmp_path / "tablets.parquet", split_column="split", train="calibrate", validation="validate",
                        test="test", targets=["assay", "hardness"], window_nm=(600, 1798), units={"assay": "mg"})
    run_training(TrainSettings(data=source, quick=True, epochs=10, pls=False, calibration="validation",
                               registry=tmp_path / "registry", report_dir=tmp_path / "reports"), verbose=0)
    bundle = ModelRegistry(tmp_path / "registry").load("1")
    assert bundle.metadata.targets == ["assay", "hardness"] and bundle.preprocessor.n_model_channels == 600
    report = json.loads(next((tmp_path / "reports").glob("*/report.json")).read_text())
    assert report["n"] == {"train": 155, "validation": 40, "test": 460}
    assert report["cnn"]["tests"]["test"]["assay"]["rmsep"] < tablets.split("test").target("assay").std()  # beats the mean
