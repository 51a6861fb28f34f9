"""Compare the CNN with PLS (LVs by cross-validation, and the test-set oracle) on a protocol: the figures.

Each seed is the base seed of one independent CNN run; with an N-member ensemble a run is a seed
ensemble (seeds base..base+N-1) averaged into one model, and the results also list every member
alone and the member a validation-only choice would pick. Protocols that share training and
validation data (same- and cross-instrument) reuse one CNN fit per base seed. PLS is reported for
the untreated spectra and for the CNN's variant. The command line is ``compare``.
"""

from __future__ import annotations

import time

import numpy as np

from sklearn.base import clone

from nirstream.trainer.cnn import CNNRegressor
from nirstream.core.chemometrics.figures_of_merit import regression_metrics
from nirstream.trainer.pls import MAX_LV, cross_validate_lvs, fit_pls, oracle_lvs
from nirstream.trainer.data_splits import Protocol, load_protocol

CV_RULES = ("min", "1se")


def compare_pls(protocol: Protocol, variant: str, target: str | None = None, max_lv: int = MAX_LV,
                n_copies: int = 10) -> tuple[dict, dict[str, np.ndarray]]:
    """PLS figures for one target (default: the protocol's first): LVs chosen by CV on the training set (each
    rule), and the test-set oracle. Also returns the CV-min model's predictions of each test set (for paired
    comparisons)."""
    target = target or protocol.targets[0]
    column = protocol.targets.index(target)

    def y(data):
        return protocol.y(data)[:, column]

    X = protocol.train.X
    selection = cross_validate_lvs(X, y(protocol.train), variant=variant, max_lv=max_lv, n_copies=n_copies)
    model = fit_pls(X, y(protocol.train), int(selection.lvs[-1]), variant=variant, n_copies=n_copies)
    report = {"rmsecv": [float(f"{v:.5g}") for v in selection.rmse],
              "rmsecv_standard_error": [float(f"{v:.5g}") for v in selection.standard_error]}
    per_lv = {name: model.predict_per_lv(data.X) for name, data in protocol.tests.items()}
    for rule in CV_RULES:
        lv = selection.best(rule)
        report[f"cv_{rule}"] = {"lv": lv, "tests": {name: regression_metrics(y(protocol.tests[name]), predicted[:, lv - 1])
                                                   for name, predicted in per_lv.items()}}
    oracle = {}
    for name, data in protocol.tests.items():  # ORACLE: LV count picked on this very test set
        lv = oracle_lvs(model, data.X, y(data)).best("min")
        oracle[name] = {"lv": lv, **regression_metrics(y(data), per_lv[name][:, lv - 1])}
    report["oracle_chosen_on_test"] = oracle
    chosen = report["cv_min"]["lv"]
    return report, {name: predicted[:, chosen - 1] for name, predicted in per_lv.items()}


def summarise(values: list[float]) -> dict:
    return {"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
            "min": float(np.min(values)), "max": float(np.max(values))}


def _rounded(history: dict[str, list[float]]) -> dict[str, list[float]]:
    return {k: [float(f"{v:.6g}") for v in values] for k, values in history.items()}


def cnn_run(regressor, protocol: Protocol, seed: int, keep_history: bool = True) -> dict:
    """Figures of one fitted CNN (or ensemble) on a protocol: ensemble, members, validation pick.

    Member and test figures are reported only; the "validation pick" is chosen on the
    validation set alone.
    """
    y_val = protocol.y(protocol.validation)
    member_tests = {name: regressor.predict_members(data.X) for name, data in protocol.tests.items()}
    pick = int(np.argmin(regressor.member_validation_rmsep_))
    run = {
        "seed": seed, "member_seeds": regressor.member_seeds_, "collapsed_seeds": regressor.collapsed_seeds_,
        "fit_seconds": regressor.fit_seconds_,
        "best_epochs": regressor.best_epochs_, "epochs_run": [len(h["loss"]) for h in regressor.histories_],
        "validation": regression_metrics(y_val, regressor.predict(protocol.validation.X)),
        "tests": {name: regression_metrics(protocol.y(data), regressor.predict(data.X))
                  for name, data in protocol.tests.items()},
        "members": [
            {"seed": member_seed, "validation_rmsep": regressor.member_validation_rmsep_[i],
             "tests_rmsep": {name: regression_metrics(protocol.y(protocol.tests[name]), preds[:, i])["rmsep"]
                             for name, preds in member_tests.items()}}
            for i, member_seed in enumerate(regressor.member_seeds_)
        ],
        "validation_pick": {"member": pick, "seed": regressor.member_seeds_[pick],
                            "tests": {name: regression_metrics(protocol.y(protocol.tests[name]), preds[:, pick])
                                      for name, preds in member_tests.items()}},
    }
    if keep_history:
        run["histories"] = [_rounded(h) for h in regressor.histories_]
    return run


def compare(protocol_names: list[str], regressor: CNNRegressor, variant: str, seeds: list[int], target: str | None = None,
            run_cnn: bool = True, verbose: int | str = 2, checkpoint=None, keep_history: bool = True) -> dict:
    """PLS for every protocol, then one CNN run (ensemble) per base seed, shared across protocols.

    ``checkpoint(results)`` is called after PLS and after every CNN run.
    """
    started = time.perf_counter()
    protocols = [load_protocol(name, target) for name in protocol_names]
    results = {}
    for protocol in protocols:
        pls_variants = list(dict.fromkeys(["none", variant]))
        results[protocol.name] = {
            "target": protocol.targets[0], "unit": protocol.unit(protocol.targets[0]),
            "n_train": protocol.train.n_samples, "n_validation": protocol.validation.n_samples,
            "n_tests": {name: data.n_samples for name, data in protocol.tests.items()},
            "pls": {v: compare_pls(protocol, v)[0] for v in pls_variants},
        }
    if checkpoint:
        checkpoint(results)
    if not run_cnn:
        return results
    for seed in seeds:
        fitted: dict[tuple, object] = {}  # (train, validation, target) -> regressor, for this seed
        for protocol in protocols:
            key = (protocol.train.fingerprint(), protocol.validation.fingerprint(), protocol.targets)
            if key not in fitted:
                seeded = clone(regressor).set_params(random_state=seed, verbose=verbose)
                fitted[key] = seeded.fit(protocol.train.X, protocol.y(protocol.train), X_val=protocol.validation.X,
                                         y_val=protocol.y(protocol.validation))
            entry = results[protocol.name]
            cnn = entry.setdefault("cnn", {"config": {"variant": variant, **regressor.settings()}, "runs": []})
            cnn["runs"].append(cnn_run(fitted[key], protocol, seed, keep_history))
            runs = cnn["runs"]
            cnn["rmsep"] = {name: summarise([r["tests"][name]["rmsep"] for r in runs]) for name in protocol.tests}
            cnn["fit_seconds"] = summarise([r["fit_seconds"] for r in runs])
        results["elapsed_seconds"] = time.perf_counter() - started
        if checkpoint:
            checkpoint(results)
    results["elapsed_seconds"] = time.perf_counter() - started
    return results


def format_table(results: dict) -> str:
    lines = []
    for name, entry in results.items():
        if not isinstance(entry, dict):
            continue
        lines.append(f"\n{name}  (target {entry['target']}, RMSEP in {entry['unit'] or 'target units'})")
        for test in entry["n_tests"]:
            if "cnn" in entry:
                s = entry["cnn"]["rmsep"][test]
                runs = entry["cnn"]["runs"]
                each = ", ".join(f"{r['tests'][test]['rmsep']:.3f}" for r in runs)
                lines.append(f"  {test:12s} CNN {entry['cnn']['config']['variant']:13s} "
                             f"{s['mean']:.3f} ± {s['std']:.3f} (runs: {each}; "
                             f"ensemble of {entry['cnn']['config']['ensemble_size']})")
            for variant, pls in entry["pls"].items():
                cv = "  ".join(f"CV-{rule} {pls[f'cv_{rule}']['tests'][test]['rmsep']:.3f} "
                               f"({pls[f'cv_{rule}']['lv']} LV)" for rule in CV_RULES)
                oracle = pls["oracle_chosen_on_test"][test]
                lines.append(f"  {test:12s} PLS {variant:13s} {cv}  ORACLE {oracle['rmsep']:.3f} ({oracle['lv']} LV)")
    return "\n".join(lines)
