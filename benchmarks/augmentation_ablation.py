"""Choose the CNN's default augmentation on validation data: which variant trains the best network?

    python benchmarks/augmentation_ablation.py [--seeds 0 1] [--output benchmarks/results/augmentation-ablation.json]

Variants: ``copies+emsc`` (EMSC and identical copies: the same number of gradient steps as the augmented variants,
so that augmentation is compared, not training length), ``emsc`` (no copies), ``augment+emsc`` (offset/slope/scale:
EMSC removes it again), ``shape+emsc``
(wavelength warp, band width, higher-order baselines, channel gain: EMSC keeps them), ``augment`` and ``shape``
without EMSC, and on the tablets ``shape+emsc`` plus instrument differences from 20 Kennard–Stone transfer standards of
calibrate_2 with their calibrate_1 spectra (``shape+emsc+pairs``). Each is the ``--quick`` CNN of ``nirstream train``.
Data: tecator (water, fat, protein; monitor validates) and the tablets (assay; validate_1 validates; test_1 and test_2
are reported). The rule reads VALIDATION RMSEP only: the variant with the lowest mean ratio to ``copies+emsc`` over sets,
targets and seeds. Test RMSEPs (95 % bootstrap intervals) and paired differences to ``copies+emsc`` are reported, never
used.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nirstream.core.datasets import load_tablets  # noqa: E402
from nirstream.core.datasets.sample_split import kennard_stone_order  # noqa: E402
from nirstream.core.datasets.tabular import write_spectra_table  # noqa: E402
from nirstream.core.chemometrics.figures_of_merit import paired_rmsep_difference, rmse, rmsep_interval  # noqa: E402
from benchmarks.quick_cnn import fit_and_predict  # noqa: E402
from nirstream.trainer.data_splits import load_protocol  # noqa: E402
from nirstream.trainer.train_settings import TrainSettings  # noqa: E402
from nirstream.core.provenance import write_result  # noqa: E402
from nirstream.trainer.training_data import load_training_protocol  # noqa: E402

VARIANTS = ("copies+emsc", "emsc", "augment+emsc", "shape+emsc", "augment", "shape")
N_STANDARDS = 20


def _pairs(folder: Path) -> tuple[Path, Path]:
    """20 Kennard–Stone transfer standards of calibrate_2 and the same tablets on instrument 1, as CSV files."""
    one, two = load_tablets(1).split("calibrate"), load_tablets(2).split("calibrate")
    rows = kennard_stone_order(two.X)[:N_STANDARDS]
    return write_spectra_table(folder / "master.csv", one.rows(rows)), write_spectra_table(folder / "slave.csv", two.rows(rows))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/augmentation-ablation.json"))
    args = parser.parse_args(argv)
    scratch = Path(tempfile.mkdtemp())
    pairs = _pairs(scratch)
    sets = {
        "tecator": ({"protocol": "tecator", "targets": ["water", "fat", "protein"]}, VARIANTS),
        "tablets": ({"protocol": "cross-instrument", "targets": ["assay"]}, (*VARIANTS, "shape+emsc+pairs")),
    }
    rows, ratios = [], {}
    for name, (options, variants) in sets.items():
        for seed in args.seeds:
            fits = {}
            for variant in variants:
                extra = {"instrument_pairs": pairs} if variant.endswith("+pairs") else {}
                if variant == "copies+emsc":
                    extra["augmentation_strength"] = 0.0
                name_in_trainer = "shape+emsc" if variant == "copies+emsc" else variant.removesuffix("+pairs")
                settings = TrainSettings(quick=True, seed=seed, variant=name_in_trainer, **options, **extra)
                protocol = load_training_protocol(settings)
                tests = ({"test_1": load_protocol("same-instrument", ["assay"], full_grid=True).test, "test_2": protocol.test}
                         if name == "tablets" else {"test": protocol.test})
                started = time.perf_counter()
                fits[variant] = (*fit_and_predict(settings, protocol, tests), time.perf_counter() - started)
            y_val = protocol.y(protocol.validation)
            for j, target in enumerate(protocol.targets):
                for variant, (val, predicted, collapsed, seconds) in fits.items():
                    validation = rmse(val[:, j], y_val[:, j])
                    baseline = rmse(fits["copies+emsc"][0][:, j], y_val[:, j])
                    row = {"data": name, "target": target, "seed": seed, "variant": variant, "validation_rmsep": validation,
                           "validation_ratio_to_copies": validation / baseline, "collapsed": collapsed,
                           "fit_seconds": round(seconds, 1), "tests": {}}
                    for test_name, test in tests.items():
                        y = protocol.y(test)[:, j] if test_name != "test_1" else test.target(target)
                        row["tests"][test_name] = {**rmsep_interval(y, predicted[test_name][:, j], seed=seed),
                                                   "minus_copies": paired_rmsep_difference(y, predicted[test_name][:, j],
                                                                                           fits["copies+emsc"][1][test_name][:, j],
                                                                                           seed=seed)}
                    ratios.setdefault(variant, []).append(row["validation_ratio_to_copies"])
                    rows.append(row)
                    shown = "  ".join(f"{t} {v['rmsep']:.3g}" for t, v in row["tests"].items())
                    print(f"{name:8s} {target:8s} seed {seed} {variant:18s} validation {validation:.4g} "
                          f"(x{row['validation_ratio_to_copies']:.3f} of copies+emsc)  {shown}", flush=True)
    # every set votes, whether or not it had the pairs variant (only the tablets have transfer standards)
    mean_ratio = {v: float(np.mean(r)) for v, r in ratios.items()}
    general = {v: r for v, r in mean_ratio.items() if not v.endswith("+pairs")}
    chosen = min(general, key=general.get)
    result = {"rule": "validation RMSEP only: the lowest mean ratio to copies+emsc over sets, targets and seeds",
              "mean_validation_ratio_to_copies": mean_ratio, "chosen_default": chosen, "seeds": args.seeds,
              "n_standards_for_pairs": N_STANDARDS, "rows": rows}
    write_result(args.output, result, seeds=args.seeds, indent=1)
    print(f"mean validation ratio to copies+emsc: {mean_ratio}; default -> {chosen} ({args.output})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
