"""Compare the CNN with PLS (LVs by cross-validation, and the test-set oracle) on a protocol.

    python -m trainer.compare --protocol same-instrument --protocol cross-instrument \
        --variant augment+emsc --seeds 0 1 2 --output results.json

Protocols that share training and validation data (same- and cross-instrument) reuse one
CNN fit per seed. PLS is reported for the untreated spectra and for the CNN's variant.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from trainer.cnn import CNNConfig, fit_cnn
from trainer.metrics import regression_metrics
from trainer.pls import MAX_LV, cross_validate_lvs, fit_pls, oracle_lvs
from trainer.protocols import PROTOCOLS, Protocol, load_protocol
from trainer.variants import VARIANTS

CV_RULES = ("min", "1se")


def compare_pls(protocol: Protocol, variant: str, max_lv: int = MAX_LV, n_copies: int = 10) -> dict:
    """PLS figures: LVs chosen by CV on the training set (each rule), and the test-set oracle."""
    X, y = protocol.train.X, protocol.y(protocol.train)
    selection = cross_validate_lvs(X, y, variant=variant, max_lv=max_lv, n_copies=n_copies)
    model = fit_pls(X, y, int(selection.lvs[-1]), variant=variant, n_copies=n_copies)
    report = {"rmsecv": [round(float(v), 4) for v in selection.rmse]}
    for rule in CV_RULES:
        lv = selection.best(rule)
        report[f"cv_{rule}"] = {
            "lv": lv,
            "tests": {
                name: regression_metrics(protocol.y(data), model.predict_per_lv(data.X)[:, lv - 1])
                for name, data in protocol.tests.items()
            },
        }
    oracle = {}
    for name, data in protocol.tests.items():  # ORACLE: LV count picked on this very test set
        lv = oracle_lvs(model, data.X, protocol.y(data)).best("min")
        oracle[name] = {"lv": lv, **regression_metrics(protocol.y(data), model.predict_per_lv(data.X)[:, lv - 1])}
    report["oracle_chosen_on_test"] = oracle
    return report


def summarise(values: list[float]) -> dict:
    return {"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
            "min": float(np.min(values)), "max": float(np.max(values))}


def compare(protocol_names: list[str], config: CNNConfig, seeds: list[int], target: str | None = None,
            run_cnn: bool = True, verbose: int | str = 2) -> dict:
    protocols = [load_protocol(name, target) for name in protocol_names]
    fitted: dict[tuple, object] = {}  # (train, validation, target, seed) -> regressor
    results = {}
    for protocol in protocols:
        pls_variants = list(dict.fromkeys(["none", config.variant]))
        entry = {"target": protocol.target, "unit": protocol.train.unit(protocol.target),
                 "n_train": protocol.train.n_samples, "n_validation": protocol.validation.n_samples,
                 "n_tests": {name: data.n_samples for name, data in protocol.tests.items()},
                 "pls": {v: compare_pls(protocol, v) for v in pls_variants}}
        if run_cnn:
            runs = []
            for seed in seeds:
                key = (protocol.train.fingerprint(), protocol.validation.fingerprint(), protocol.target, seed)
                if key not in fitted:
                    seeded = CNNConfig(**{**config.to_dict(), "seed": seed})
                    fitted[key] = fit_cnn(protocol.train.X, protocol.y(protocol.train), protocol.validation.X,
                                          protocol.y(protocol.validation), seeded, verbose=verbose)
                regressor = fitted[key]
                runs.append({
                    "seed": seed, "fit_seconds": regressor.fit_seconds_, "best_epoch": regressor.best_epoch_,
                    "epochs_run": len(regressor.history_["loss"]), "history": regressor.history_,
                    "validation": regression_metrics(protocol.y(protocol.validation),
                                                     regressor.predict(protocol.validation.X)),
                    "tests": {name: regression_metrics(protocol.y(data), regressor.predict(data.X))
                              for name, data in protocol.tests.items()},
                })
            entry["cnn"] = {
                "config": config.to_dict(),
                "runs": runs,
                "rmsep": {name: summarise([r["tests"][name]["rmsep"] for r in runs]) for name in protocol.tests},
                "fit_seconds": summarise([r["fit_seconds"] for r in runs]),
            }
        results[protocol.name] = entry
    return results


def format_table(results: dict) -> str:
    lines = []
    for name, entry in results.items():
        lines.append(f"\n{name}  (target {entry['target']}, RMSEP in {entry['unit'] or 'target units'})")
        for test in entry["n_tests"]:
            if "cnn" in entry:
                s = entry["cnn"]["rmsep"][test]
                lines.append(f"  {test:12s} CNN {entry['cnn']['config']['variant']:13s} "
                             f"{s['mean']:.3f} ± {s['std']:.3f} (n={len(entry['cnn']['runs'])} seeds)")
            for variant, pls in entry["pls"].items():
                cv = "  ".join(f"CV-{rule} {pls[f'cv_{rule}']['tests'][test]['rmsep']:.3f} "
                               f"({pls[f'cv_{rule}']['lv']} LV)" for rule in CV_RULES)
                oracle = pls["oracle_chosen_on_test"][test]
                lines.append(f"  {test:12s} PLS {variant:13s} {cv}  ORACLE {oracle['rmsep']:.3f} ({oracle['lv']} LV)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer.compare", description=__doc__.splitlines()[0])
    defaults = CNNConfig()
    parser.add_argument("--protocol", action="append", choices=PROTOCOLS,
                        help="repeatable; default same-instrument")
    parser.add_argument("--variant", choices=VARIANTS, default=defaults.variant)
    parser.add_argument("--target", default=None, help="default: assay for tablets, fat for tecator")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--n-copies", type=int, default=defaults.n_copies)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--optimizer", choices=("adam", "adadelta"), default=defaults.optimizer)
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    parser.add_argument("--no-cnn", action="store_true", help="PLS figures only")
    parser.add_argument("--output", type=Path, help="write the full results (with training curves) as JSON")
    parser.add_argument("--quiet", action="store_true", help="no per-epoch progress lines")
    args = parser.parse_args(argv)

    config = CNNConfig(variant=args.variant, epochs=args.epochs, n_copies=args.n_copies,
                       batch_size=args.batch_size, optimizer=args.optimizer, learning_rate=args.learning_rate)
    results = compare(args.protocol or ["same-instrument"], config, args.seeds, args.target,
                      run_cnn=not args.no_cnn, verbose=0 if args.quiet else 2)
    print(format_table(results))
    if args.output:
        args.output.write_text(json.dumps(results, indent=2))
        print(f"\nwrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
