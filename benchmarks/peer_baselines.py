"""Issue 29: nirstream's deployed model beside the strongest open method a chemometrician could run instead.

    pip install -e '.[peers]'     # nirs4all-aom (CeCILL-2.1 / AGPL-3.0): a benchmark extra, never a runtime dependency
    python benchmarks/peer_baselines.py [--seeds 0 1 2] [--output benchmarks/results/peer-baselines.json] \
        [--readme reports/README.md]
    python benchmarks/peer_baselines.py --readme reports/README.md --render-only   (no runs: the section from the JSON)

Every split where nirstream reports a figure: the tablets (calibrate_1 trains, validate_1 validates; test_1 the same
instrument, test_2 instrument 2 without transfer), tecator (its published train / monitor / test) and corn on each
of its three instruments with one fixed split published here: samples 1-50 train, 51-60 validate, 61-80 test.
nirstream is trained exactly as ``nirstream train --quick`` does (family auto: the CNN and the operator-adaptive PLS,
the family chosen on validation), once per seed, and its bundle predicts the test spectra through the worker's
``Predictor``. The peers choose by their own internal cross-validation, so they are fitted twice: on the training and
the validation rows together (as issue 29's table did: more data than nirstream's model gets) and on the training rows
alone (the same data as nirstream's model): AOM-PLS (``operator_bank="compact"``, ``criterion="cv"``, 5 folds) and
AOM-Ridge (``selection="global"``, compact bank); the mean predictor predicts the training mean. The best peer per row is the one with the lower test RMSEP (chosen on test, which can only favour
the peer); deployed - best peer by the paired bootstrap on the same test spectra. The test sets choose nothing of
nirstream's. Interval coverage: the share of test lab values inside the deployed model's 90 % interval.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.report_sections import parse_or_render, update_section  # noqa: E402
from nirstream.core.artifacts.registry import ModelRegistry  # noqa: E402
from nirstream.core.chemometrics.figures_of_merit import paired_rmsep_difference, rmse, rmsep_interval  # noqa: E402
from nirstream.core.datasets.corn import load_corn  # noqa: E402
from nirstream.core.datasets.tabular import write_spectra_table  # noqa: E402
from nirstream.core.datasets.tablets import load_tablets  # noqa: E402
from nirstream.core.provenance import write_result  # noqa: E402
from nirstream.core.serving.predictor import Predictor  # noqa: E402
from nirstream.trainer.data_splits import DataSource  # noqa: E402
from nirstream.trainer.train_settings import TrainSettings  # noqa: E402
from nirstream.trainer.training_data import load_training_protocol  # noqa: E402
from nirstream.trainer.training_run import run_training  # noqa: E402

SECTION, SECTION_COMMAND = "peer-baselines", "benchmarks/peer_baselines.py --readme"
SETS = ("tablets", "tecator", "corn-m5", "corn-mp5", "corn-mp6")
CORN_SPLIT = {"train": range(0, 50), "validation": range(50, 60), "test": range(60, 80)}
PEERS = ("aom-pls", "aom-ridge")


def corn_file(instrument: str, scratch: Path) -> DataSource:
    """One corn instrument as a plant's file with the fixed split (``CORN_SPLIT``) in a split column."""
    data = load_corn(instrument)
    data = replace(data, splits={label: np.array(rows) for label, rows in CORN_SPLIT.items()})
    path = write_spectra_table(scratch / f"corn-{instrument}.csv", data, split_column="split")
    return DataSource(path=path, id_column="sample", split_column="split", units=dict(zip(data.target_names, data.units)))


def settings_for(name: str, seed: int, scratch: Path) -> TrainSettings:
    common = {"quick": True, "seed": seed, "registry": scratch / f"{name}-{seed}", "report_dir": scratch / "reports"}
    if name == "tablets":
        return TrainSettings(protocol="same-instrument", targets=["assay"], **common)
    if name == "tecator":
        return TrainSettings(protocol="tecator", targets=["water", "fat", "protein"], **common)
    return TrainSettings(data=corn_file(name.split("-")[1], scratch), **common)


def test_sets(name: str, protocol) -> dict:
    """Test sets as analyzers send them (the grid the bundle takes; ``protocol.model_view`` cuts the model's window)."""
    tests = {("test_1" if name == "tablets" else "test"): protocol.test}
    if name == "tablets":  # instrument 2, no transfer: the same model on the other analyzer's spectra
        tests["test_2"] = load_tablets(2).split("test")
    return tests


def fit_peers(X: np.ndarray, y: np.ndarray) -> dict[str, object]:
    from aom_nirs.pls import AOMPLSRegressor
    from aom_nirs.ridge import AOMRidgeRegressor

    return {"aom-pls": AOMPLSRegressor(operator_bank="compact", criterion="cv", cv=5).fit(X, y),
            "aom-ridge": AOMRidgeRegressor(selection="global", operator_bank="compact").fit(X, y)}


def run_set(name: str, seeds: list[int], scratch: Path) -> list[dict]:
    runs = []
    for seed in seeds:
        settings = settings_for(name, seed, scratch)
        started = time.perf_counter()
        summary = run_training(settings, verbose=0)
        predictor = Predictor(ModelRegistry(settings.registry).load(summary["version"]))
        runs.append((seed, summary, predictor, time.perf_counter() - started))
    protocol = load_training_protocol(settings)
    fit_X = np.vstack([protocol.model_view(protocol.train).X, protocol.model_view(protocol.validation).X])
    fit_Y = np.vstack([protocol.y(protocol.train), protocol.y(protocol.validation)])
    train_X, train_Y = protocol.model_view(protocol.train).X, protocol.y(protocol.train)
    rows = []
    for j, target in enumerate(protocol.targets):
        started = time.perf_counter()
        peers = fit_peers(fit_X, fit_Y[:, j])
        same_rows = fit_peers(train_X, train_Y[:, j])  # the rows nirstream's deployed model is fitted on
        peer_seconds = time.perf_counter() - started
        for test_name, data in test_sets(name, protocol).items():
            X, y = data.X, protocol.y(data)[:, j]
            peer_predictions = {p: np.ravel(model.predict(protocol.model_view(data).X)) for p, model in peers.items()}
            peer_rmsep = {p: rmse(pred, y) for p, pred in peer_predictions.items()}
            best_peer = min(peer_rmsep, key=peer_rmsep.get)
            same_predictions = {p: np.ravel(model.predict(protocol.model_view(data).X)) for p, model in same_rows.items()}
            same_rmsep = {p: rmse(pred, y) for p, pred in same_predictions.items()}
            best_same = min(same_rmsep, key=same_rmsep.get)
            mean_prediction = np.full(len(y), protocol.y(protocol.train)[:, j].mean())
            per_seed = []
            for seed, summary, predictor, seconds in runs:
                batch = predictor.predict(X)
                predicted = batch.values[:, j]
                inside = batch.flags != "outlier"  # the worker's own flag: spectra it warns are beyond its domain
                half = predictor.intervals.half_width[target] if predictor.intervals else None
                deployed = summary["deployed"]
                per_seed.append({
                    "seed": seed, "family": deployed["family"], "family_reason": deployed["reason"],
                    "pls_variant": deployed.get("pls_variant"), "operator": (deployed.get("operators") or {}).get(target),
                    "latent_variables": (deployed.get("latent_variables") or {}).get(target),
                    "validation_rmsep": deployed["validation_rmsep"], "rmsep_ci95": rmsep_interval(y, predicted, seed=seed),
                    "minus_best_peer": paired_rmsep_difference(y, predicted, peer_predictions[best_peer], seed=seed),
                    "minus_best_peer_same_rows": paired_rmsep_difference(y, predicted, same_predictions[best_same],
                                                                         seed=seed),
                    "interval_half_width": half,
                    "interval_coverage": float(np.mean(np.abs(y - predicted) <= half)) if half is not None else None,
                    "outlier_share": float(np.mean(~inside)),
                    "interval_coverage_not_flagged": (float(np.mean(np.abs(y - predicted)[inside] <= half))
                                                      if half is not None and inside.any() else None),
                    "interval_nominal": predictor.intervals.coverage if predictor.intervals else None,
                    "training_seconds": round(seconds, 1),
                })
            rows.append({"data": name, "target": target, "unit": protocol.unit(target), "test": test_name,
                         "n_train": protocol.train.n_samples, "n_validation": protocol.validation.n_samples,
                         "n_test": int(len(y)), "nirstream": per_seed,
                         "peers": {p: rmsep_interval(y, peer_predictions[p], seed=0) for p in PEERS},
                         "best_peer": best_peer, "peer_fit_seconds": round(peer_seconds, 1),
                         "peers_training_rows_only": {p: rmsep_interval(y, same_predictions[p], seed=0) for p in PEERS},
                         "best_peer_training_rows_only": best_same,
                         "mean_predictor_rmsep": rmse(mean_prediction, y)})
            print(describe(rows[-1]), flush=True)
    return rows


def describe(r: dict) -> str:
    first = r["nirstream"][0]
    return (f"{r['data']:9s} {r['target']:9s} {r['test']:7s} nirstream "
            + " ".join(f"{s['family']}:{s['rmsep_ci95']['rmsep']:.4g}" for s in r["nirstream"])
            + f" | aom-pls {r['peers']['aom-pls']['rmsep']:.4g} aom-ridge {r['peers']['aom-ridge']['rmsep']:.4g}"
            f" mean {r['mean_predictor_rmsep']:.4g} | seed {first['seed']} - best peer "
            f"{first['minus_best_peer']['difference']:+.3g} ({first['minus_best_peer']['low']:+.3g}..{first['minus_best_peer']['high']:+.3g})"
            f" cover {first['interval_coverage']}")


def _g(v: float) -> str:
    return f"{v:.3g}" if abs(v) < 100 else f"{v:.1f}"


def _span(shares: list[float]) -> str:
    """Shares over the seeds as a percentage range (one figure when the seeds agree)."""
    if not shares:
        return "–"
    return "–".join(f"{c:.0%}".replace("%", " %") for c in sorted({min(shares), max(shares)}))


def _verdict(d: dict) -> str:
    return "ahead" if d["high"] < 0 else "behind" if d["low"] > 0 else "level"


def render_section(result: dict) -> str:
    rows, seeds = result["rows"], result["seeds"]
    lines = [f"# Against the strongest open chemometrics: AOM-PLS and AOM-Ridge (issue 29)", "",
             f"`python {SECTION_COMMAND} reports/README.md` (JSON: `benchmarks/results/peer-baselines.json`, commit "
             f"{result['provenance']['commit'][:7]}, seeds {', '.join(map(str, seeds))}). nirstream: `nirstream train --quick` "
             "(family auto: the CNN and the operator-adaptive PLS, the family chosen on validation), one run per seed; "
             "peers: nirs4all-aom " + result["peer_version"] + " fitted on the training and validation rows (they choose by "
             "internal CV, so validation rows are training data to them, as in issue 29's table) and, for a "
             "same-data comparison, on the training rows alone (what nirstream's deployed model is fitted on). Splits: the "
             "tablets' calibrate_1 / validate_1 (test_1 same instrument, test_2 instrument 2 without transfer), tecator's "
             "published split, corn samples 1-50 / 51-60 / 61-80 on each instrument. RMSEP with 95 % bootstrap interval; "
             "\"deployed − best peer\" paired on the same test spectra (the best peer picked on the test set, which "
             "favours the peer); coverage = test lab values inside the deployed 90 % interval, over all test spectra and over "
             "those the worker does not flag as outliers (T², Q or EMSC range beyond its limits: the warning it gives "
             "where the interval does not hold).", "",
             "| set | target | test (n) | deployed, per seed | RMSEP seed " + str(seeds[0]) + " (95 % CI) | RMSEP over seeds | "
             "AOM-PLS / AOM-Ridge (train + validation) | mean predictor | deployed − best peer, seed " + str(seeds[0])
             + " (95 % CI) | verdict over seeds | AOM-PLS / AOM-Ridge (train only) | verdict over seeds, train only | "
             "90 % interval covers | flagged outlier | covers, not flagged |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        runs = r["nirstream"]
        first = runs[0]
        families = ", ".join(f"{s['family'].upper()}" + (f" ({s['pls_variant']}/{s['operator']}, {s['latent_variables']} LV)"
                                                         if s["family"] == "pls" else "") for s in runs)
        if len({f for f in families.split(", ")}) == 1 and len(runs) > 1:
            families = f"{families.split(', ')[0]} × {len(runs)}"
        rmseps = [s["rmsep_ci95"]["rmsep"] for s in runs]
        ci = first["rmsep_ci95"]
        d = first["minus_best_peer"]
        verdicts = [_verdict(s["minus_best_peer"]) for s in runs]
        verdict = ", ".join(f"{v} {verdicts.count(v)}" for v in ("ahead", "level", "behind") if verdicts.count(v))
        cover = [s["interval_coverage"] for s in runs if s["interval_coverage"] is not None]
        cover_in = [s["interval_coverage_not_flagged"] for s in runs if s.get("interval_coverage_not_flagged") is not None]
        flagged = [s["outlier_share"] for s in runs if s.get("outlier_share") is not None]
        peers = {p: r["peers"][p]["rmsep"] for p in PEERS}
        best = r["best_peer"]
        same = {p: r["peers_training_rows_only"][p]["rmsep"] for p in PEERS}
        same_verdicts = [_verdict(s["minus_best_peer_same_rows"]) for s in runs]
        same_verdict = ", ".join(f"{v} {same_verdicts.count(v)}" for v in ("ahead", "level", "behind")
                                 if same_verdicts.count(v))
        lines.append(
            f"| {r['data']} | {r['target']} ({r['unit']}) | {r['test']} ({r['n_test']}) | {families} | "
            f"{_g(ci['rmsep'])} ({_g(ci['low'])}–{_g(ci['high'])}) | {_g(min(rmseps))}–{_g(max(rmseps))} | "
            + " / ".join(("**" if p == best else "") + _g(peers[p]) + ("**" if p == best else "") for p in PEERS)
            + f" | {_g(r['mean_predictor_rmsep'])} | {d['difference']:+.3g} ({d['low']:+.3g} to {d['high']:+.3g}) | "
            f"{verdict} | " + " / ".join(_g(same[p]) for p in PEERS) + f" | {same_verdict} | " + _span(cover) + " | " + _span(flagged) + " | " + _span(cover_in) + " |")
    lines.append("")
    for key, which in (("minus_best_peer", "the best peer fitted on training + validation rows"),
                       ("minus_best_peer_same_rows", "the best peer fitted on the same training rows")):
        verdicts = [_verdict(s[key]) for r in rows for s in r["nirstream"]]
        lines.append(f"Over {len(rows)} rows × {len(seeds)} seeds, against {which}: ahead (paired 95 % interval below "
                     f"0) in {verdicts.count('ahead')}, level in {verdicts.count('level')}, behind in "
                     f"{verdicts.count('behind')}.")
    for r in rows:
        if (r["data"], r["test"]) == ("tablets", "test_1"):
            rmseps = [s["rmsep_ci95"]["rmsep"] for s in r["nirstream"]]
            lines.append(f"Tablets test_1 (issue 29's goal: at most 4.3 mg): {_g(max(rmseps))} mg at worst over the seeds, "
                         + ("met." if max(rmseps) <= 4.3 else "not met."))
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_or_render(__doc__, "benchmarks/results/peer-baselines.json", SECTION, SECTION_COMMAND, render_section, argv,
                              sets={"nargs": "+", "choices": SETS, "default": list(SETS)},
                              seeds={"nargs": "+", "type": int, "default": [0, 1, 2]})
    if args is None:
        return 0
    from importlib.metadata import version

    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.sets:
            rows += run_set(name, args.seeds, Path(scratch))
            result = {"seeds": args.seeds, "peer_version": version("nirs4all-aom"), "corn_split": {k: [v.start + 1, v.stop]
                      for k, v in CORN_SPLIT.items()}, "rows": rows}
            write_result(args.output, result, seeds=args.seeds, indent=1)
    if args.readme:
        update_section(args.readme, SECTION, render_section(json.loads(args.output.read_text())), SECTION_COMMAND)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
