"""The applicability domain means what it says, and the spectral region comes from the data (issue 28, items 3-4).
Real spectra: tecator as a plant's CSV, with noisy detector edges added (the first and last 10 % of the channels
replaced by noise a hundred times the centre's values), as an instrument's ends can hold."""

import json

import numpy as np
import pytest

from nirstream.core.artifacts.registry import ModelRegistry
from nirstream.core.chemometrics.domain import ApplicabilityDomain
from nirstream.core.serving.predictor import Predictor
from nirstream.trainer.domain_shares import flag_shares
from tests.test_data_files import tecator_frame


def with_noisy_edges(frame, fraction=0.1, seed=0):
    """``frame``'s spectra with the first and last ``fraction`` of the channels replaced by large noise."""
    columns = [c for c in frame.columns if c.replace(".", "").isdigit()]
    edge = int(len(columns) * fraction)
    centre = frame[columns[edge:-edge]].to_numpy()
    noisy = frame.copy()
    rng = np.random.default_rng(seed)
    for column in columns[:edge] + columns[-edge:]:
        noisy[column] = rng.normal(0.0, 100 * np.abs(centre).max(), len(frame))
    return noisy, (float(columns[edge - 1]), float(columns[-edge]))


def train(tmp_path, name, frame, region="cv"):
    from nirstream.trainer.data_splits import DataSource
    from nirstream.trainer.train_settings import TrainSettings
    from nirstream.trainer.training_run import run_training

    frame.to_csv(tmp_path / f"{name}.csv", index=False)
    source = DataSource(path=tmp_path / f"{name}.csv", targets=["fat"], split_column="set", validation="val")
    settings = TrainSettings(data=source, family="pls", variant="emsc", region=region,
                             registry=tmp_path / f"registry-{name}", report_dir=tmp_path / "reports")
    return run_training(settings, verbose=0)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tecator):
    base = tmp_path_factory.mktemp("region")
    noisy_frame, edges = with_noisy_edges(tecator_frame(tecator))
    return base, train(base, "clean", tecator_frame(tecator)), train(base, "noisy", noisy_frame), noisy_frame, edges


def test_noisy_edges_are_left_out_by_the_region_choice_and_the_figures_come_back(trained):
    base, clean, noisy, _, (last_noisy_low, first_noisy_high) = trained
    first, last = noisy["region"]["window_nm"]
    assert last_noisy_low < first and last < first_noisy_high, noisy["region"]
    assert sum(c["chosen"] for c in noisy["region"]["candidates"]) == 1
    full = next(c for c in noisy["region"]["candidates"] if c["channels"] == 100)
    chosen = next(c for c in noisy["region"]["candidates"] if c["chosen"])
    assert chosen["score"] < full["score"] / 2  # the CV figures behind the choice: the edges ruin the whole range
    clean_fat, noisy_fat = clean["deployed"]["tests"]["test"]["fat"], noisy["deployed"]["tests"]["test"]["fat"]
    interval = clean_fat["rmsep_ci95"]
    assert interval["low"] <= noisy_fat["rmsep"] <= interval["high"], (clean_fat, noisy_fat)
    html = next((base / "reports").glob("data-noisy.csv-v1/report.html")).read_text()
    assert "Spectral region" in html and "moving-window" in html
    bundle = ModelRegistry(base / "registry-noisy").load("1")
    assert (bundle.preprocessor.first_nm, bundle.preprocessor.last_nm) == (first, last)  # what the worker cuts


def test_held_out_validation_spectra_are_flagged_near_the_nominal_rates(trained, tecator):
    _, clean, *_ = trained
    validation = clean["domain"]["per_split"]["validation"]
    assert validation["n"] == 43
    for level in ("warning", "outlier"):
        assert validation[level]["nominal_inside"], validation  # Clopper-Pearson 95 % interval holds the nominal rate
    assert "consistent" in clean["domain"]["nominal_check"] and not clean["domain"]["warnings"]


def test_limits_from_the_fitted_spectra_alone_flag_too_many_held_out_spectra(tecator):
    """The first rule (cv=None) against the out-of-fold one, on 16 training spectra as in the issue: the held-out
    tecator spectra's outlier share must come down to near 1 % (this test fails on the first rule)."""
    from nirstream.trainer.variants import variant_steps

    rng = np.random.default_rng(0)
    rows = rng.choice(tecator.n_samples, 16, replace=False)
    held = np.delete(tecator.X, rows, axis=0)
    preprocessor, _ = variant_steps("sg1+snv", tecator.wavelengths)
    preprocessor.fit(tecator.X[rows])
    shares = {}
    for cv in (None, 10):
        domain = ApplicabilityDomain(cv=cv).fit(preprocessor.transform(tecator.X[rows]))
        shares[cv] = flag_shares(domain.flags(*domain.statistics(preprocessor.transform(held))))["outlier"]["share"]
    assert shares[None] > 0.1 and shares[10] < 0.05, shares  # ten times the nominal 1 %, against near it


def test_a_split_far_outside_the_domain_gets_the_warning(trained, tmp_path):
    from nirstream.cli import main

    base, _, _, noisy_frame, _ = trained
    frame = noisy_frame.copy()
    frame["set"] = np.where(frame["set"] == "test", "plant", "calibration")
    columns = [c for c in frame.columns if c.replace(".", "").isdigit()]
    plant = frame["set"] == "plant"
    wavelengths = np.array([float(c) for c in columns])
    frame.loc[plant, columns] += 0.5 * np.sin(wavelengths / 7.0)  # bands the calibration never saw
    frame.to_csv(tmp_path / "plant.csv", index=False)
    output = tmp_path / "figures.json"
    assert main(["evaluate", "--data", str(tmp_path / "plant.csv"), "--split-column", "set", "--target", "fat",
                 "--registry", str(base / "registry-noisy"), "--output", str(output)]) == 0
    figures = json.loads(output.read_text())
    assert figures["domain"]["plant"]["outside_domain"] and not figures["domain"]["calibration"]["outside_domain"]
    assert len(figures["domain_warnings"]) == 1 and figures["domain_warnings"][0].startswith("plant:")
    assert "extrapolation" in figures["domain_warnings"][0]
    predictor = Predictor(ModelRegistry(base / "registry-noisy").load("1"))
    assert figures["domain"]["plant"]["n"] == 43 and predictor.version == "1"
