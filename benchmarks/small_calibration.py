"""Issue 28: a 20-sample calibration of corn and of tecator, trained end to end as ``nirstream train --data`` does (the
small-set rule: cross-validation on the 20 chooses; the CNN is not fitted) and evaluated on the rest of the set through
the worker's code path, each RMSEP beside the mean predictor's (the 20 samples' mean as the prediction).

    python benchmarks/small_calibration.py [OUTPUT.json]   (default benchmarks/results/small-calibration.json)

Two ways to pick the 20 from each set: ``kennard-stone`` (the first 20 in Kennard-Stone order over the spectra: a
calibration design that spans them) and ``random`` (a seeded draw: a plant's unplanned samples). The
rest of the set (tecator 195, corn 60) is predicted by the deployed bundle; nothing of it chooses anything.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nirstream.core.artifacts.registry import ModelRegistry  # noqa: E402
from nirstream.core.chemometrics.figures_of_merit import figures_per_target, paired_rmsep_difference, rmse  # noqa: E402
from nirstream.core.datasets.catalog import open_named  # noqa: E402
from nirstream.core.datasets.sample_split import kennard_stone_order  # noqa: E402
from nirstream.core.provenance import write_result  # noqa: E402
from nirstream.core.serving.predictor import Predictor  # noqa: E402
from nirstream.trainer.data_splits import DataSource  # noqa: E402
from nirstream.trainer.train_settings import TrainSettings  # noqa: E402
from nirstream.trainer.training_run import run_training  # noqa: E402

SETS = ("tecator", "corn-m5")
N_CALIBRATION = 20
SEED = 0


def calibration_rows(X: np.ndarray, selection: str) -> np.ndarray:
    if selection == "kennard-stone":
        return np.sort(kennard_stone_order(X)[:N_CALIBRATION])
    return np.sort(np.random.default_rng(SEED).choice(len(X), N_CALIBRATION, replace=False))


def as_plant_file(data, rows: np.ndarray, path: Path) -> Path:
    frame = pd.DataFrame(data.X[rows], columns=[f"{w:.4f}" for w in data.wavelengths])
    for j, target in reversed(list(enumerate(data.target_names))):
        frame.insert(0, target, data.y[rows, j])
    frame.insert(0, "sample", [data.sample_names[i] for i in rows])
    frame.to_csv(path, index=False)
    return path


def run(name: str, selection: str, scratch: Path) -> list[dict]:
    data = open_named(name)
    rows = calibration_rows(data.X, selection)
    rest = np.setdiff1d(np.arange(data.n_samples), rows)
    path = as_plant_file(data, rows, scratch / f"{name}-{selection}.csv")
    settings = TrainSettings(data=DataSource(path=path, id_column="sample", units=dict(zip(data.target_names, data.units))),
                             registry=scratch / f"{name}-{selection}-registry", report_dir=scratch / "reports", seed=SEED)
    summary = run_training(settings, verbose=0)
    predictor = Predictor(ModelRegistry(settings.registry).load(summary["version"]))
    predicted = predictor.predict(data.X[rest]).values
    y_rest, train_mean = data.y[rest], data.y[rows].mean(axis=0)
    figures = figures_per_target(y_rest, predicted, data.target_names, seed=SEED)
    result = []
    for j, target in enumerate(data.target_names):
        mean_predictor = np.full(len(rest), train_mean[j])
        half = predictor.intervals.half_width[target] if predictor.intervals else None
        result.append({
            "data": name, "selection": selection, "target": target, "unit": data.units[j], "n_calibration": len(rows),
            "n_rest": int(len(rest)), "small_set": summary["small_set"], "deployed_family": summary["deployed"]["family"],
            "family_reason": summary["deployed"]["reason"], "pls_variant": summary["deployed"].get("pls_variant"),
            "latent_variables": summary["deployed"].get("latent_variables", {}).get(target),
            "promotion": summary["promotion"]["reason"],
            "rmsecv_out_of_fold": summary["deployed"]["validation_rmsep"][summary["deployed"]["family"]][target],
            "mean_predictor_out_of_fold": summary["deployed"]["mean_predictor_validation_rmsep"][target],
            "rest_rmsep": figures[target]["rmsep_ci95"], "rest_r2": figures[target]["r2"], "rest_bias": figures[target]["bias"],
            "rest_mean_predictor_rmsep": rmse(mean_predictor, y_rest[:, j]),
            "model_minus_mean_predictor": paired_rmsep_difference(y_rest[:, j], predicted[:, j], mean_predictor, seed=SEED),
            "interval_half_width": half,
            "interval_coverage_on_rest": (float(np.mean(np.abs(y_rest[:, j] - predicted[:, j]) <= half))
                                          if half is not None else None),
            "elapsed_seconds": summary["elapsed_seconds"],
        })
        print(describe(result[-1]), flush=True)
    return result


def describe(r: dict) -> str:
    rest = r["rest_rmsep"]
    return (f"{r['data']:8s} {r['selection']:13s} {r['target']:9s} {r['pls_variant']:10s} {r['latent_variables']:>2} LV  "
            f"RMSECV {r['rmsecv_out_of_fold']:.3g} (mean {r['mean_predictor_out_of_fold']:.3g})  rest RMSEP "
            f"{rest['rmsep']:.3g} ({rest['low']:.3g}-{rest['high']:.3g}) mean predictor {r['rest_mean_predictor_rmsep']:.3g}"
            f"  coverage {r['interval_coverage_on_rest']}")


def main() -> int:
    output = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("benchmarks/results/small-calibration.json")
    with tempfile.TemporaryDirectory() as scratch:
        rows = [row for name in SETS for selection in ("kennard-stone", "random") for row in run(name, selection, Path(scratch))]
    write_result(output, {"n_calibration": N_CALIBRATION, "rows": rows}, seeds=[SEED], indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
