"""Choose the CNN's input centring on validation data: the mean training spectrum vs the paper's global mean.

    python benchmarks/cnn_input_centring.py [--seeds 0 1] [--output benchmarks/results/cnn-input-centring.json]

For each data set (tecator: water, fat, protein; corn-m5 with its Kennard–Stone split: moisture, oil, protein,
starch; the tablets same-instrument: assay) and seed, the ``--quick`` CNN that ``nirstream train --quick`` fits is
trained once per centring. The choice rule looks at the VALIDATION RMSEP only (mean over sets, targets and seeds
of spectrum / global); test RMSEPs with 95 % bootstrap intervals and the paired difference are reported, never
used. A network whose seeds all collapse counts as the mean predictor.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nirstream.core.chemometrics.figures_of_merit import paired_rmsep_difference, rmse, rmsep_interval  # noqa: E402
from benchmarks.quick_cnn import fit_and_predict  # noqa: E402
from nirstream.trainer.data_splits import DataSource  # noqa: E402
from nirstream.trainer.train_settings import TrainSettings  # noqa: E402
from nirstream.core.provenance import write_result  # noqa: E402
from nirstream.trainer.training_data import load_training_protocol  # noqa: E402

SETS = {
    "tecator": {"protocol": "tecator", "targets": ["water", "fat", "protein"]},
    "corn-m5": {"data": DataSource(path="corn-m5")},
    "tablets": {"protocol": "same-instrument", "targets": ["assay"]},
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/cnn-input-centring.json"))
    args = parser.parse_args(argv)
    rows, ratios = [], []
    for name, options in SETS.items():
        for seed in args.seeds:
            fits = {}
            for centring in ("spectrum", "global"):
                settings = TrainSettings(quick=True, seed=seed, centring=centring, **options)
                protocol = load_training_protocol(settings)
                started = time.perf_counter()
                validation, tests, collapsed = fit_and_predict(settings, protocol, {"test": protocol.test})
                fits[centring] = (validation, tests["test"], collapsed, time.perf_counter() - started)
            y_val, y_test = protocol.y(protocol.validation), protocol.y(protocol.test)
            for j, target in enumerate(protocol.targets):
                row = {"data": name, "target": target, "seed": seed, "unit": protocol.unit(target)}
                for centring, (val, test, collapsed, seconds) in fits.items():
                    row[centring] = {"validation_rmsep": rmse(val[:, j], y_val[:, j]), "collapsed": collapsed,
                                     "fit_seconds": round(seconds, 1), "test": rmsep_interval(y_test[:, j], test[:, j], seed=seed)}
                row["mean_predictor_test_rmsep"] = rmse(np.full(len(y_test), protocol.y(protocol.train)[:, j].mean()), y_test[:, j])
                row["test_difference_spectrum_minus_global"] = paired_rmsep_difference(
                    y_test[:, j], fits["spectrum"][1][:, j], fits["global"][1][:, j], seed=seed)
                ratios.append(row["spectrum"]["validation_rmsep"] / row["global"]["validation_rmsep"])
                rows.append(row)
                print(f"{name:8s} {target:9s} seed {seed}: validation {row['spectrum']['validation_rmsep']:.4g} (spectrum) vs "
                      f"{row['global']['validation_rmsep']:.4g} (global); test {row['spectrum']['test']['rmsep']:.4g} vs "
                      f"{row['global']['test']['rmsep']:.4g}", flush=True)
    ratio = float(np.mean(ratios))
    result = {"rule": "validation RMSEP only: spectrum centring becomes the default if the mean spectrum/global ratio < 1",
              "mean_validation_ratio_spectrum_over_global": ratio, "chosen": "spectrum" if ratio < 1 else "global",
              "seeds": args.seeds, "rows": rows}
    write_result(args.output, result, seeds=args.seeds, indent=1)
    print(f"mean validation ratio spectrum/global {ratio:.3f}: {result['chosen']} -> {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
