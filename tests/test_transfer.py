"""Calibration transfer: PDS/DS (chemotools) and SBC checked by hand-computed cases on real spectra, the checksummed
per-analyzer artifact, and a worker applying one analyzer's transfer while another keeps the untransferred path."""

import json
import shutil
import time

import numpy as np
import pytest
from sklearn.cross_decomposition import PLSRegression

from nirstream.core.artifacts.bundle import write_bundle
from nirstream.core.datasets import SpectralDataset
from nirstream.core.chemometrics.domain import ApplicabilityDomain
from nirstream.core.chemometrics.linear_model import LinearModel
from nirstream.core.messages.common import WavelengthGrid
from nirstream.core.messages.model_event import ModelEvent
from nirstream.core.serving.predictor import Predictor
from nirstream.core.artifacts.registry import ModelRegistry
from nirstream.core.chemometrics.spectral_preprocessor import SpectralPreprocessor
from nirstream.core.artifacts.transfer import CalibrationTransfer, TransferError, TransferMetadata
from tests.conftest import requires_tablets
from tests.helpers import tamper
from tests.streaming import collect, decoded, produce, run
from nirstream.trainer.transfer_fit import fit_transfer


def _standards(tecator, X, rows) -> SpectralDataset:
    return SpectralDataset(name="standards", X=X[rows], y=np.empty((len(rows), 0)), wavelengths=tecator.wavelengths,
                           target_names=(), units=(), sample_names=tuple(f"std-{i}" for i in rows), splits={})


@pytest.fixture(scope="module")
def pls_fat(tecator, tmp_path_factory):
    """A PLS bundle on tecator fat (a linear model: SBC's effect can be computed by hand)."""
    train = tecator.split("train")
    preprocessor = SpectralPreprocessor(tecator.wavelengths, emsc_order=None).fit(train.X)
    features = preprocessor.transform(train.X)
    model = LinearModel.from_pls([PLSRegression(n_components=10, scale=False).fit(features, train.target("fat"))])
    registry = ModelRegistry(tmp_path_factory.mktemp("transfer-registry"))
    version = registry.publish(lambda d: write_bundle(
        d, model, preprocessor, ApplicabilityDomain().fit(features), targets=["fat"], units={"fat": "%"}, target_mean=[0.0],
        target_scale=[1.0], target_range={"fat": (0.0, 60.0)}, model_kind="pls"))
    registry.promote(version)
    return registry


def test_ds_recovers_a_known_linear_instrument_difference_exactly(tecator, pls_fat):
    """Hand case: slave = master @ A (a blur plus a gain tilt, invertible); with more standards than channels
    DS's map is A⁻¹, so new slave spectra come back as the master's."""
    n = tecator.n_channels
    A = 0.8 * np.eye(n) + 0.1 * np.eye(n, k=1) + 0.1 * np.eye(n, k=-1)
    A = A @ np.diag(np.linspace(0.9, 1.1, n))
    slave_X = tecator.X @ A
    standards, new = np.arange(150), np.arange(150, 215)
    transfer = fit_transfer("ds", Predictor(pls_fat.load()), _standards(tecator, tecator.X, standards),
                            _standards(tecator, slave_X, standards), "line-2")
    np.testing.assert_allclose(transfer.standardise(slave_X[new]), tecator.X[new], rtol=1e-6, atol=1e-8)


def test_pds_is_one_local_pls_per_master_channel_and_undoes_a_wavelength_shift(tecator, pls_fat):
    """Hand case: the slave reads each channel one channel late (x_slave[i] = x_master[i - 1]). Each column of PDS's
    map must be scikit-learn's PLS of that master channel on the slave's window (checked for every channel, with the
    intercept folded into the offset), and the standardised spectra must undo most of the shift on new samples."""
    slave_X = np.roll(tecator.X, 1, axis=1)
    slave_X[:, 0] = tecator.X[:, 0]
    standards, new = np.arange(0, 215, 5), np.setdiff1d(np.arange(215), np.arange(0, 215, 5))
    transfer = fit_transfer("pds", Predictor(pls_fat.load()), _standards(tecator, tecator.X, standards),
                            _standards(tecator, slave_X, standards), "line-2", half_window=2, components=3)
    S, M = slave_X[standards], tecator.X[standards]
    for i in range(tecator.n_channels):
        low, high = max(0, i - 2), min(tecator.n_channels, i + 3)
        local = PLSRegression(n_components=3, scale=False).fit(S[:, low:high], M[:, i])
        by_hand = local.predict(slave_X[new][:, low:high]).ravel()
        np.testing.assert_allclose(transfer.standardise(slave_X[new])[:, i], by_hand, rtol=1e-7, atol=1e-9)
    before = np.abs(slave_X[new] - tecator.X[new])[:, 2:-2].mean()
    after = np.abs(transfer.standardise(slave_X[new]) - tecator.X[new])[:, 2:-2].mean()
    assert after < 0.05 * before


def test_sbc_corrects_an_offset_the_model_sees_as_a_constant_bias(tecator, pls_fat):
    """Hand case: a linear model y = f @ w + b sees a constant spectral shift d as a prediction bias of exactly
    (d / scaler scale) @ w: SBC's slope is 1 and its bias that amount, negated (to float32, the model's input type)."""
    predictor = Predictor(pls_fat.load())
    shift = 0.02 * np.linspace(-1, 1, tecator.n_channels) ** 2
    rows = np.arange(0, 215, 7)
    transfer = fit_transfer("sbc", predictor, _standards(tecator, tecator.X, rows), _standards(tecator, tecator.X + shift, rows),
                            "line-2")
    preprocessor, weights = predictor.bundle.preprocessor, predictor.bundle.model.weights[:, 0]
    expected_bias = -float((shift / preprocessor.scaler_.scale_) @ weights)
    assert transfer.metadata.prediction_slope["fat"] == pytest.approx(1.0, abs=1e-5)
    assert transfer.metadata.prediction_bias["fat"] == pytest.approx(expected_bias, rel=1e-4)
    assert abs(expected_bias) > 0.1  # the shift matters: the checks above can fail
    corrected = predictor.with_transfers({"line-2": transfer}).predict(tecator.X + shift, ["line-2"] * tecator.n_samples)
    np.testing.assert_allclose(corrected.values, predictor.predict(tecator.X).values, atol=1e-4)
    assert set(corrected.transfer) == {"sbc#unsaved"}


def test_standards_are_matched_by_sample_id_and_too_few_are_refused(tecator, pls_fat):
    predictor = Predictor(pls_fat.load())
    master = _standards(tecator, tecator.X, np.arange(10))
    with pytest.raises(TransferError, match="only 2 standards are in both files"):
        fit_transfer("ds", predictor, master, _standards(tecator, tecator.X, np.arange(8, 20)), "line-2")


def _spectral_transfer(tecator, version: str, gain: float) -> CalibrationTransfer:
    n = tecator.n_channels
    metadata = TransferMetadata(analyzer="line-2", method="pds", model_version=version,
                                grid=WavelengthGrid.from_wavelengths(tecator.wavelengths), targets=["fat"], standards=["a", "b", "c"])
    return CalibrationTransfer(metadata, gain * np.eye(n), np.full(n, 0.01))


def test_a_tampered_transfer_is_refused_and_the_registry_keeps_one_active_per_analyzer(tecator, pls_fat, tmp_path):
    registry = ModelRegistry(shutil.copytree(pls_fat.base, tmp_path / "registry"))
    assert registry.publish_transfer(_spectral_transfer(tecator, "1", 1.01)) == "1"
    assert registry.publish_transfer(_spectral_transfer(tecator, "1", 0.99)) == "2"
    assert registry.active_transfers() == {"line-2": "2"}
    np.testing.assert_allclose(registry.load_transfer("line-2").matrix, 0.99 * np.eye(tecator.n_channels))
    assert registry.history()[-1].event == "transfer_published"
    tamper(registry.transfer_path("line-2", "2") / "arrays.npz")
    with pytest.raises(TransferError, match="checksum mismatch"):
        registry.load_transfer("line-2")


def test_models_show_lists_the_transfers(tecator, pls_fat, tmp_path, capsys):
    from nirstream.cli import main

    registry = ModelRegistry(shutil.copytree(pls_fat.base, tmp_path / "registry"))
    registry.publish_transfer(_spectral_transfer(tecator, "1", 1.0))
    assert main(["models", "show", "--registry", str(registry.base)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["transfers"]["line-2"]["method"] == "pds" and shown["transfers"]["line-2"]["applies"]


@requires_tablets
@pytest.mark.tablets
def test_pds_brings_instrument_two_towards_instrument_one_on_unseen_tablets(pls_fat):
    """Real transfer: 20 Kennard–Stone standards of calibrate_2 with their instrument-1 spectra; test_2's spectra after
    PDS are much closer to the same tablets' instrument-1 spectra than before (not equal: a tablet is repositioned
    between measurements)."""
    from nirstream.core.datasets import load_tablets
    from nirstream.core.datasets.sample_split import kennard_stone_order

    one, two = load_tablets(1), load_tablets(2)
    cal_1, cal_2 = one.split("calibrate"), two.split("calibrate")
    rows = kennard_stone_order(cal_2.X)[:20]
    from chemotools.adaptation import PiecewiseDirectStandardization

    pds = PiecewiseDirectStandardization(window_length=5, n_components=2, scale=False).fit(cal_2.X[rows], X_source=cal_1.X[rows])
    test_1, test_2 = one.split("test").X, two.split("test").X
    before = np.sqrt(np.mean((test_2 - test_1) ** 2))
    after = np.sqrt(np.mean((test_2 @ pds.T_ + pds.bias_ - test_1) ** 2))
    assert after < 0.6 * before  # measured: 0.064 vs 0.125


def test_a_worker_applies_one_analyzers_transfer_and_swaps_it_while_another_stays_untransferred(
        broker, tecator, pls_fat, tmp_path):
    from tests.streaming import WorkerProcess, unique_topics
    from tests.test_stream_worker import spectra_messages

    registry = ModelRegistry(shutil.copytree(pls_fat.base, tmp_path / "registry"))
    registry.publish_transfer(_spectral_transfer(tecator, "1", 1.02))
    topics = unique_topics()
    worker = WorkerProcess(broker.bootstrap_servers, registry.base, topics, tmp_path / "worker.log",
                           extra_env={"NIRSTREAM_REGISTRY_POLL_SECONDS": "3600"}).start()
    try:
        worker.wait_ready()
        predictor = Predictor(registry.load())

        def stream(start, count):
            """Send spectra start..start+count-1; their predictions (the topic is read from its start: all so far)."""
            messages, rows = spectra_messages(tecator, count, analyzers=("line-1", "line-2"), binary_every=1, start=start)
            run(produce(broker.bootstrap_servers, topics.spectra, messages))
            got = decoded(run(collect(broker.bootstrap_servers, topics.predictions, start + count)))
            return {p["sequence"]: p for p in got if p["sequence"] >= start}, dict(zip(range(start, start + count), rows))

        def check(predictions, rows, gain, label):
            for sequence, p in predictions.items():
                x = rows[sequence][None, :]
                if p["analyzer_id"] == "line-2":
                    expected = predictor.predict(x @ (gain * np.eye(tecator.n_channels)) + 0.01).values[0, 0]
                    assert p["transfer"] == label
                else:
                    expected = predictor.predict(x).values[0, 0]
                    assert "transfer" not in p
                assert p["predictions"]["fat"] == pytest.approx(expected, rel=1e-6, abs=1e-6)

        check(*stream(0, 40), 1.02, "pds#1")
        # a new transfer, announced: the worker swaps it in at a batch boundary
        registry.publish_transfer(_spectral_transfer(tecator, "1", 0.98))
        run(produce(broker.bootstrap_servers, topics.models,
                    [(None, ModelEvent(event="transfer_published", version="1").model_dump_json().encode())]))
        deadline = time.monotonic() + 60
        predictions, rows = stream(40, 40)
        while any(p["transfer"] != "pds#2" for p in predictions.values() if p["analyzer_id"] == "line-2"):
            assert time.monotonic() < deadline, "the worker did not swap in transfer 2"
            predictions, rows = stream(max(predictions) + 1, 20)  # the event may land after these: send more
        check(predictions, rows, 0.98, "pds#2")
        # a tampered transfer is refused; transfer 2 keeps serving
        registry.publish_transfer(_spectral_transfer(tecator, "1", 1.5))
        tamper(registry.transfer_path("line-2", "3") / "arrays.npz")
        run(produce(broker.bootstrap_servers, topics.models,
                    [(None, ModelEvent(event="transfer_published", version="1").model_dump_json().encode())]))
        while worker.metric("nirstream_model_swap_failures_total", reason="transfer") < 1:
            assert time.monotonic() < deadline, "the tampered transfer was not refused"
            time.sleep(0.1)  # polling the worker's metric
        check(*stream(max(predictions) + 1, 20), 0.98, "pds#2")
    finally:
        worker.stop()


def test_transfer_fit_and_evaluate_from_the_command_line(tecator, pls_fat, tmp_path, capsys):
    """CSV standards in, an active artifact out; evaluate --analyzer applies it: the shifted analyzer's fat RMSEP
    falls back to what the model gets on the master's spectra."""
    import pandas as pd

    from nirstream.cli import main

    registry = ModelRegistry(shutil.copytree(pls_fat.base, tmp_path / "registry"))
    shift = 0.5 * np.linspace(-1, 1, tecator.n_channels) ** 2  # a bias of several % fat
    columns = [f"{w:.10g}" for w in tecator.wavelengths]
    standards = np.arange(0, 215, 7)
    for name, X in (("master", tecator.X), ("slave", tecator.X + shift)):
        frame = pd.DataFrame(X[standards], columns=columns)
        frame.insert(0, "sample", [f"s{i}" for i in standards])
        frame.to_csv(tmp_path / f"{name}.csv", index=False)
    test = tecator.split("test")
    slave_test = pd.DataFrame(test.X + shift, columns=columns)
    slave_test.insert(0, "fat", test.target("fat"))
    slave_test.to_csv(tmp_path / "line2-test.csv", index=False)
    assert main(["transfer", "fit", "--analyzer", "line-2", "--master", str(tmp_path / "master.csv"), "--slave",
                 str(tmp_path / "slave.csv"), "--method", "sbc", "--by", "test", "--registry", str(registry.base)]) == 0
    assert "transfer 1 (sbc, 31 standards" in capsys.readouterr().out
    figures = {}
    for name, extra in (("without", []), ("with", ["--analyzer", "line-2"])):
        output = tmp_path / f"{name}.json"
        assert main(["evaluate", "--data", str(tmp_path / "line2-test.csv"), "--target", "fat", "--output", str(output),
                     "--registry", str(registry.base), *extra]) == 0
        figures[name] = json.loads(output.read_text())["tests"]["data"]["fat"]["rmsep"]
    master_rmsep = float(np.sqrt(np.mean((Predictor(registry.load()).predict(test.X).values[:, 0] - test.target("fat")) ** 2)))
    assert figures["with"] == pytest.approx(master_rmsep, rel=1e-3) and figures["without"] > 1.2 * figures["with"]
    assert registry.history()[-1].by == "test"
