"""Issue 28 (items 3-4): the spectral region chosen by cross-validation, on and off, on tecator and corn, each clean and
with noisy detector edges (the first and last 10 % of the channels replaced by noise a hundred times the centre's
largest value), with the mean predictor beside every figure and the applicability-domain shares per split.

    python benchmarks/region_selection.py [--output benchmarks/results/region-selection.json]

Each run is ``nirstream train`` on a CSV as a plant would export it, family PLS, variant emsc: tecator with its own
train / validation (monitor) / test split, target fat; corn (m5 instrument, 80 samples) by the Kennard-Stone split the
trainer makes, target moisture. Per run: the chosen window, the deployed PLS's test RMSEP with its 95 % bootstrap
interval, the mean predictor's (the training mean) on the same test spectra, and the shares of each split the model's
own checks flag (T², Q, EMSC range; nominal 5 % warning, 1 % outlier on spectra of the calibration's kind). The
test sets choose nothing.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nirstream.core.chemometrics.figures_of_merit import figures_per_target  # noqa: E402
from nirstream.core.datasets.catalog import open_named  # noqa: E402
from nirstream.core.provenance import write_result  # noqa: E402
from nirstream.trainer.data_splits import DataSource, protocol_from_data  # noqa: E402
from nirstream.trainer.train_settings import TrainSettings  # noqa: E402
from nirstream.trainer.training_run import run_training  # noqa: E402

SETS = {"tecator": ("tecator", "fat"), "corn": ("corn-m5", "moisture")}
EDGE_FRACTION, EDGE_SCALE, SEED = 0.1, 100.0, 0


def plant_frame(dataset, target: str, noisy: bool) -> pd.DataFrame:
    """The data set as a plant's CSV (sample, split when it has one, target, one column per wavelength)."""
    X = dataset.X.copy()
    if noisy:
        edge = int(X.shape[1] * EDGE_FRACTION)
        scale = EDGE_SCALE * np.abs(X[:, edge:-edge]).max()
        rng = np.random.default_rng(SEED)
        X[:, :edge] = rng.normal(0.0, scale, (len(X), edge))
        X[:, -edge:] = rng.normal(0.0, scale, (len(X), edge))
    frame = pd.DataFrame(X, columns=[f"{w:.4f}" for w in dataset.wavelengths])
    frame.insert(0, target, dataset.target(target))
    if dataset.splits:
        split_of = {int(i): {"monitor": "validation"}.get(name, name) for name, rows in dataset.splits.items() for i in rows}
        frame.insert(0, "set", [split_of[i] for i in range(dataset.n_samples)])
    frame.insert(0, "sample", dataset.sample_names)
    return frame


def one_run(directory: Path, name: str, target: str, noisy: bool, region: str) -> dict:
    dataset = open_named(SETS[name][0])
    path = directory / f"{name}-{'noisy' if noisy else 'clean'}.csv"
    plant_frame(dataset, target, noisy).to_csv(path, index=False)
    source = DataSource(path=path, targets=[target], **({"split_column": "set"} if dataset.splits else {}))
    settings = TrainSettings(data=source, family="pls", variant="emsc", region=region, seed=SEED,
                             registry=directory / f"registry-{path.stem}-{region}", report_dir=directory / "reports")
    summary = run_training(settings, verbose=0)
    protocol = protocol_from_data(source)
    y_train, y_test = protocol.y(protocol.train), protocol.y(protocol.test)
    mean_predictor = figures_per_target(y_test, np.full_like(y_test, y_train.mean()), [target], SEED)[target]
    deployed = summary["deployed"]["tests"]["test"][target]
    return {"data": name, "target": target, "noisy_edges": noisy, "region": region,
            "window_nm": summary["region"]["window_nm"], "region_how": summary["region"]["how"],
            "region_candidates": summary["region"]["candidates"], "n": summary["n"],
            "pls_variant": summary["deployed"]["pls_variant"], "latent_variables": summary["deployed"]["latent_variables"],
            "test_rmsep": deployed["rmsep"], "test_rmsep_ci95": deployed["rmsep_ci95"],
            "mean_predictor_rmsep": mean_predictor["rmsep"], "mean_predictor_rmsep_ci95": mean_predictor["rmsep_ci95"],
            "domain": {split: {"n": e["n"], "warning_share": e["warning"]["share"], "outlier_share": e["outlier"]["share"],
                               "outside_domain": e["outside_domain"]}
                       for split, e in summary["domain"]["per_split"].items()},
            "domain_nominal_check": summary["domain"]["nominal_check"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/region-selection.json"))
    args = parser.parse_args(argv)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (_, target) in SETS.items():
            for noisy in (False, True):
                for region in ("full", "cv"):
                    run = one_run(Path(tmp), name, target, noisy, region)
                    runs.append(run)
                    print(f"{name:8s} {'noisy' if noisy else 'clean'} region {region:4s} window {run['window_nm']} "
                          f"RMSEP {run['test_rmsep']:.3f} (mean predictor {run['mean_predictor_rmsep']:.3f})")
    write_result(args.output, {"runs": runs, "edge_fraction": EDGE_FRACTION, "edge_scale": EDGE_SCALE}, seeds=[SEED])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
