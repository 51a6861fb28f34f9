"""Issue 28: a 20-sample calibration of corn and of tecator, trained end to end as ``nirstream train --data`` does (the
small-set rule: cross-validation on the 20 chooses; the CNN is not fitted) and evaluated on the rest of the set through
the worker's code path, each RMSEP beside the mean predictor's (the 20 samples' mean as the prediction).

    python benchmarks/small_calibration.py [--output benchmarks/results/small-calibration.json] [--readme reports/README.md]
    python benchmarks/small_calibration.py --readme reports/README.md --render-only   (no runs: the section from the JSON)

Two ways to pick the 20 from each set: ``kennard-stone`` (the first 20 in Kennard-Stone order over the spectra: a
calibration design that spans them) and ``random`` (a seeded draw: a plant's unplanned samples). The
rest of the set (tecator 195, corn 60) is predicted by the deployed bundle; nothing of it chooses anything.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.report_sections import add_section_arguments, render_only, update_section  # noqa: E402
from nirstream.core.artifacts.registry import ModelRegistry  # noqa: E402
from nirstream.core.chemometrics.figures_of_merit import figures_per_target, paired_rmsep_difference, rmse  # noqa: E402
from nirstream.core.datasets.catalog import open_named  # noqa: E402
from nirstream.core.datasets.sample_split import kennard_stone_order  # noqa: E402
from nirstream.core.datasets.tabular import write_spectra_table  # noqa: E402
from nirstream.core.provenance import write_result  # noqa: E402
from nirstream.core.serving.predictor import Predictor  # noqa: E402
from nirstream.trainer.data_splits import DataSource  # noqa: E402
from nirstream.trainer.train_settings import TrainSettings  # noqa: E402
from nirstream.trainer.training_run import run_training  # noqa: E402

SETS = ("tecator", "corn-m5")
SELECTIONS = ("kennard-stone", "random")
REGIONS = ("cv", "full")
SECTION, SECTION_COMMAND = "small-calibration", "benchmarks/small_calibration.py --readme"
N_CALIBRATION = 20
SEED = 0


def calibration_rows(X: np.ndarray, selection: str) -> np.ndarray:
    if selection == "kennard-stone":
        return np.sort(kennard_stone_order(X)[:N_CALIBRATION])
    return np.sort(np.random.default_rng(SEED).choice(len(X), N_CALIBRATION, replace=False))


def run(name: str, selection: str, region: str, scratch: Path) -> list[dict]:
    data = open_named(name)
    rows = calibration_rows(data.X, selection)
    rest = np.setdiff1d(np.arange(data.n_samples), rows)
    path = write_spectra_table(scratch / f"{name}-{selection}.csv", data.rows(rows))
    settings = TrainSettings(data=DataSource(path=path, id_column="sample", units=dict(zip(data.target_names, data.units))),
                             region=region, registry=scratch / f"{name}-{selection}-{region}-registry",
                             report_dir=scratch / "reports", seed=SEED)
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
            "data": name, "selection": selection, "region": region,
            "window_nm": summary["region"]["window_nm"], "region_how": summary["region"]["how"], "target": target, "unit": data.units[j], "n_calibration": len(rows),
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
            "interval_coverage_nominal": predictor.intervals.coverage if predictor.intervals else None,
            "interval_n_calibration": predictor.intervals.n_calibration if predictor.intervals else None,
            "interval_coverage_on_rest": (float(np.mean(np.abs(y_rest[:, j] - predicted[:, j]) <= half))
                                          if half is not None else None),
            "elapsed_seconds": summary["elapsed_seconds"],
        })
        print(describe(result[-1]), flush=True)
    return result


def describe(r: dict) -> str:
    rest = r["rest_rmsep"]
    return (f"{r['data']:8s} {r['selection']:13s} {r['region']:4s} {str(r['window_nm']):20s} {r['target']:9s} {r['pls_variant']:10s} {r['latent_variables']:>2} LV  "
            f"RMSECV {r['rmsecv_out_of_fold']:.3g} (mean {r['mean_predictor_out_of_fold']:.3g})  rest RMSEP "
            f"{rest['rmsep']:.3g} ({rest['low']:.3g}-{rest['high']:.3g}) mean predictor {r['rest_mean_predictor_rmsep']:.3g}"
            f"  coverage {r['interval_coverage_on_rest']}")


def _window(r: dict) -> str:
    return "every channel" if r["window_nm"] is None else f"{r['window_nm'][0]:.0f}–{r['window_nm'][1]:.0f} nm"


def _g(x: float) -> str:
    return f"{x:.3g}" if abs(x) >= 0.1 else f"{x:.2g}"


def _range(values: list[float]) -> str:
    low, high = min(values), max(values)
    return _g(low) if _g(low) == _g(high) else f"{_g(low)}–{_g(high)}"


def _percent(x: float) -> str:
    return f"{100 * x:.0f} %"


def render_section(result: dict) -> str:
    """The reports/README.md section, every figure read from the benchmark's JSON."""
    rows, n = result["rows"], result["n_calibration"]
    provenance = result["provenance"]
    picked = {"kennard-stone": "Kennard–Stone", "random": "random"}
    rest = {}
    for r in rows:
        rest.setdefault(r["data"], r["n_rest"])
    calibrations = {(r["data"], r["selection"], r["region"]) for r in rows}
    small = {(r["data"], r["selection"], r["region"]) for r in rows if r["small_set"]}
    selections = sorted({r["selection"] for r in rows}, key=SELECTIONS.index)
    nominal = {r["interval_coverage_nominal"] for r in rows if r.get("interval_coverage_nominal") is not None}
    level = _percent(nominal.pop()) if len(nominal) == 1 else "nominal"
    lines = ["# A 20-sample calibration: the small-set rule (issue 28)", "",
             f"`{provenance['command']}` (JSON: `benchmarks/results/small-calibration.json`, commit "
             f"{str(provenance['commit'])[:7]}, seed {', '.join(map(str, provenance['seeds']))}): {n} samples of each set "
             "as a plant's whole calibration file (no split column), trained exactly as `nirstream train --data FILE "
             "--id-column sample` does, then the deployed bundle predicts the rest of the set ("
             + ", ".join(f"{name} {count}" for name, count in rest.items()) + ") through the worker's code path. "
             "The small-set rule applied to " + (f"all {len(small)} calibrations" if small == calibrations else
                                                 f"{len(small)} of the {len(calibrations)} calibrations") + f" (`trainer/small_sets.py`: {n} samples, fewer than an automatic split "
             "needs): every spectrum trains, repeated k-fold CV on the calibration set chose the pretreatment and LVs, "
             "out-of-fold predictions chose the family (the CNN is not fitted below a hold-out split), calibrated the "
             f"{level} intervals and fed the gate. Each calibration is trained with spectral region selection on "
             "(*cv*, the default: moving-window interval PLS on the calibration set, every channel kept unless a window "
             "beats it) and off (*full*, every channel); the window column is what it kept. The calibration samples are "
             + (f"either the first {n} in Kennard–Stone order over the spectra (a calibration design) or a seeded random "
                "draw" if len(selections) > 1 else
                f"the first {n} in Kennard–Stone order over the spectra (a calibration design) only"
                if selections == ["kennard-stone"] else "a seeded random draw only")
             + f". \"Mean predictor\": the {n} samples' mean as the prediction, on the same spectra. Nothing of the rest "
             "chose anything.", "",
             f"| set | {n} picked by | region | window | target | pretreatment (LV) | out-of-fold RMSECV / mean predictor "
             f"| rest RMSEP (95 % CI) | rest mean predictor | {level} interval covers (rest) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ci = r["rest_rmsep"]
        lines.append(f"| {r['data']} | {picked[r['selection']]} | {r['region']} | {_window(r)} | {r['target']} | "
                     f"{r['pls_variant'] or r['deployed_family']} ({r['latent_variables']}) | "
                     f"{_g(r['rmsecv_out_of_fold'])} / {_g(r['mean_predictor_out_of_fold'])} | "
                     f"{_g(ci['rmsep'])} ({_g(ci['low'])}–{_g(ci['high'])}) | {_g(r['rest_mean_predictor_rmsep'])} | "
                     + ("-" if r["interval_coverage_on_rest"] is None else _percent(r["interval_coverage_on_rest"])) + " |")
    better = sum(r["model_minus_mean_predictor"]["verdict"] == "a better" for r in rows)
    worse = [r for r in rows if r["model_minus_mean_predictor"]["verdict"] == "b better"]
    verdict = (f"Every model beats the mean predictor on the rest of its set by the paired bootstrap "
               f"(`model_minus_mean_predictor`, verdict \"a better\" in all {len(rows)} rows)." if better == len(rows) else
               f"The model beats the mean predictor on the rest of its set by the paired bootstrap "
               f"(`model_minus_mean_predictor`) in {better} of {len(rows)} rows"
               + (f"; the mean predictor is better in {len(worse)} (" + ", ".join(
                   f"{r['data']} {r['target']}, {picked[r['selection']]}, region {r['region']}" for r in worse) + ")"
                  if worse else "") + ".")
    region_lines = []
    for name in rest:
        changed = [(on, off) for on in rows if on["data"] == name and on["region"] == "cv" and on["window_nm"] is not None
                   for off in rows if off["data"] == name and off["region"] == "full" and off["selection"] == on["selection"]
                   and off["target"] == on["target"]]
        kept = {(r["selection"]) for r in rows if r["data"] == name and r["region"] == "cv" and r["window_nm"] is not None}
        if not any(r["data"] == name and r["region"] == "cv" for r in rows):
            continue
        if not changed:
            region_lines.append(f"{name}: region selection kept every channel for every calibration, so *cv* and *full* "
                                "are the same model")
            continue
        within = sum(off["rest_rmsep"]["low"] <= on["rest_rmsep"]["rmsep"] <= off["rest_rmsep"]["high"] for on, off in changed)
        lower = sum(on["rest_rmsep"]["rmsep"] < off["rest_rmsep"]["rmsep"] for on, off in changed)
        region_lines.append(
            f"{name}: a window for the " + " and ".join(picked[s] for s in SELECTIONS if s in kept) + " calibration"
            + ("s" if len(kept) > 1 else "") + f"; its rest RMSEP is below every channel's in {lower} of {len(changed)} "
            f"targets and inside every channel's 95 % interval in {within} of {len(changed)}")
    region = ("Region selection on and off: " + "; ".join(region_lines) + "." if region_lines else "")
    spread = "; ".join(
        f"{name} " + ", ".join(f"{t} {_range([r['rest_rmsep']['rmsep'] for r in rows if r['data'] == name and r['target'] == t])}"
                               for t in dict.fromkeys(r["target"] for r in rows if r["data"] == name))
        for name in rest)
    optimistic = [r for r in rows if r["rmsecv_out_of_fold"] < r["rest_rmsep"]["low"]]
    undercover = [r for r in optimistic if r["interval_coverage_on_rest"] is not None and nominal_of(r) is not None
                  and r["interval_coverage_on_rest"] < nominal_of(r)]
    lines += ["", verdict + " " + region, "",
              f"Twenty samples are not a full training split (issue 16's table above has tecator from its full training "
              f"split); here the rest's RMSEP spans {spread}."
              + (" Where the out-of-fold RMSECV lies below the rest's 95 % interval (" + "; ".join(
                  f"{r['data']} {r['target']} with {r['latent_variables']} LVs, {picked[r['selection']]}, region {r['region']}"
                  for r in optimistic) + f"), cross-validation on {n} chose more than the data support"
                 + (", and the intervals calibrated on those out-of-fold residuals under-cover (" + ", ".join(
                     _percent(r["interval_coverage_on_rest"]) for r in undercover) + f" for a nominal {level})"
                    if undercover else "") + ": with a small set the interval is a rough guide, and the report says on "
                 "how many spectra it was calibrated." if optimistic else "")]
    return "\n".join(lines)


def nominal_of(r: dict) -> float | None:
    return r.get("interval_coverage_nominal")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/small-calibration.json"))
    add_section_arguments(parser, "small-calibration")
    parser.add_argument("--selections", nargs="+", choices=SELECTIONS, default=list(SELECTIONS))
    args = parser.parse_args(argv)
    if render_only(args, parser, SECTION, render_section, SECTION_COMMAND):
        return 0
    with tempfile.TemporaryDirectory() as scratch:
        rows = [row for name in SETS for selection in args.selections for region in REGIONS
                for row in run(name, selection, region, Path(scratch))]
    write_result(args.output, {"n_calibration": N_CALIBRATION, "selections": args.selections, "regions": list(REGIONS),
                               "rows": rows}, seeds=[SEED], indent=1)
    if args.readme:
        update_section(args.readme, SECTION, render_section(json.loads(args.output.read_text())), SECTION_COMMAND)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
