"""Issue 28 (items 3-4): the spectral region chosen by cross-validation, on and off, on tecator and corn, each clean and
with noisy detector edges (the first and last 10 % of the channels replaced by noise a hundred times the centre's
largest value), with the mean predictor beside every figure and the applicability-domain shares per split.

    python benchmarks/region_selection.py [--output benchmarks/results/region-selection.json] [--readme reports/README.md]
    python benchmarks/region_selection.py --readme reports/README.md --render-only   (no runs: the section from the JSON)

Each run is ``nirstream train`` on a CSV as a plant would export it, family PLS, variant emsc: tecator with its own
train / validation (monitor) / test split, target fat; corn (m5 instrument, 80 samples) by the Kennard-Stone split the
trainer makes, target moisture. Per run: the chosen window, the deployed PLS's test RMSEP with its 95 % bootstrap
interval, the mean predictor's (the training mean) on the same test spectra, and the shares of each split the model's
own checks flag (T², Q, EMSC range; nominal 5 % warning, 1 % outlier on spectra of the calibration's kind). The
test sets choose nothing. ``--readme`` rewrites the README section between the region-selection markers from the JSON
(tests/test_report_sections.py checks they agree).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.report_sections import add_section_arguments, render_only, update_section  # noqa: E402
from nirstream.core.chemometrics.figures_of_merit import figures_per_target  # noqa: E402
from nirstream.core.datasets.catalog import open_named  # noqa: E402
from nirstream.core.provenance import write_result  # noqa: E402
from nirstream.trainer.data_splits import DataSource, protocol_from_data  # noqa: E402
from nirstream.trainer.train_settings import TrainSettings  # noqa: E402
from nirstream.trainer.training_run import run_training  # noqa: E402

SETS = {"tecator": ("tecator", "fat"), "corn": ("corn-m5", "moisture")}
EDGE_FRACTION, EDGE_SCALE, SEED = 0.1, 100.0, 0
SECTION, SECTION_COMMAND = "region-selection", "benchmarks/region_selection.py --readme"


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
    return {"data": name, "dataset": SETS[name][0], "target": target, "unit": dataset.units[dataset.target_names.index(target)],
            "wavelength_range_nm": [float(dataset.wavelengths[0]), float(dataset.wavelengths[-1])],
            "noisy_edges": noisy, "region": region,
            "window_nm": summary["region"]["window_nm"], "region_how": summary["region"]["how"],
            "region_candidates": summary["region"]["candidates"], "n": summary["n"],
            "pls_variant": summary["deployed"]["pls_variant"], "latent_variables": summary["deployed"]["latent_variables"],
            "test_rmsep": deployed["rmsep"], "test_rmsep_ci95": deployed["rmsep_ci95"],
            "mean_predictor_rmsep": mean_predictor["rmsep"], "mean_predictor_rmsep_ci95": mean_predictor["rmsep_ci95"],
            "domain": {split: {"n": e["n"], "warning_share": e["warning"]["share"], "outlier_share": e["outlier"]["share"],
                               "outside_domain": e["outside_domain"]}
                       for split, e in summary["domain"]["per_split"].items()},
            "domain_nominal_check": summary["domain"]["nominal_check"]}


def _range_nm(runs: list[dict], name: str) -> tuple[float, float] | None:
    """The data set's wavelength range: recorded by newer runs, else the span of the region candidates."""
    for r in runs:
        if r["data"] == name and r.get("wavelength_range_nm"):
            return tuple(r["wavelength_range_nm"])
    candidates = [c for r in runs if r["data"] == name for c in r.get("region_candidates") or []]
    return (min(c["first_nm"] for c in candidates), max(c["last_nm"] for c in candidates)) if candidates else None


def _nm(x: float) -> str:
    return f"{x:.1f}".removesuffix(".0")


def _window(r: dict, full: tuple[float, float] | None) -> str:
    if r["window_nm"] is None:
        return "all" + (f" {_nm(full[0])}–{_nm(full[1])}" if full else "")
    return f"{_nm(r['window_nm'][0])}–{_nm(r['window_nm'][1])}"


def _ci(c: dict) -> str:
    return f"{c['rmsep']:.3f} ({c['low']:.3f}–{c['high']:.3f})"


def _mean(x: float) -> str:
    return f"{x:.2f}" if abs(x) >= 10 else f"{x:.3f}"


def _share(values: list[float]) -> str:
    low, high = min(values), max(values)
    text = (lambda x: f"{100 * x:.1f}".removesuffix(".0"))
    return f"{text(low)} %" if text(low) == text(high) else f"{text(low)}–{text(high)} %"


def render_section(result: dict) -> str:
    """The reports/README.md section, every figure read from the benchmark's JSON."""
    runs, provenance = result["runs"], result["provenance"]
    names = list(dict.fromkeys(r["data"] for r in runs))
    first = {name: next(r for r in runs if r["data"] == name) for name in names}
    full = {name: _range_nm(runs, name) for name in names}
    by = {(r["data"], r["noisy_edges"], r["region"]): r for r in runs}

    def split_text(name: str) -> str:
        n = first[name]["n"]
        return " / ".join(str(n[k]) for k in ("train", "validation", "test"))

    unit = {name: f" ({first[name]['unit']})" if first[name].get("unit") else "" for name in names}
    described = {"tecator": lambda: f"Tecator: its own split ({split_text('tecator')}), target {first['tecator']['target']}"
                                    f"{unit['tecator']}.",
                 "corn": lambda: f"Corn: m5, Kennard–Stone split ({split_text('corn')}; the noisy file's split differs, since "
                                 f"Kennard–Stone reads the spectra), target {first['corn']['target']}{unit['corn']}."}
    lines = ["# Spectral region from the data, and an applicability domain that means what it says (issue 28, items 3-4)", "",
             f"`benchmarks/results/region-selection.json`, written by `{provenance['command']}` (commit "
             f"{str(provenance['commit'])[:7]}, seed {', '.join(map(str, provenance['seeds']))}). Each row is "
             "`nirstream train` on a plant-style CSV, family PLS, variant emsc (the PLS pretreatment is then chosen by CV "
             f"as usual). \"noisy\" = the first and last {100 * result['edge_fraction']:g} % of the channels replaced by "
             f"Gaussian noise {result['edge_scale']:g} × the centre's largest value. Region *full* = every channel "
             "(`--region full`), *cv* = moving-window interval PLS on the training split (the default). Test RMSEP with "
             "its 95 % bootstrap interval; the mean predictor (training mean) on the same test spectra beside it. "
             + " ".join(described[name]() if name in described else f"{name}: target {first[name]['target']}"
                        f"{unit[name]}, split {split_text(name)}." for name in names), "",
             "| data | edges | region | window (nm) | PLS test RMSEP (95 % CI) | mean predictor RMSEP |",
             "|---|---|---|---|---|---|"]
    for r in runs:
        worse = r["test_rmsep"] > r["mean_predictor_rmsep"]
        rmsep = f"**{_ci(r['test_rmsep_ci95'])}: worse than the mean predictor**" if worse else _ci(r["test_rmsep_ci95"])
        lines.append(f"| {r['data']} | {'noisy' if r['noisy_edges'] else 'clean'} | {r['region']} | "
                     f"{_window(r, full[r['data']] if not r['noisy_edges'] else None)} | {rmsep} | {_mean(r['mean_predictor_rmsep'])} |")
    noisy, off, cost = [], [], []
    for name in names:
        on, without, clean_on, clean_off = (by.get((name, noisy_edges, region)) for noisy_edges, region in
                                            ((True, "cv"), (True, "full"), (False, "cv"), (False, "full")))
        if on and without and clean_off:
            if on["window_nm"] is None:
                noisy.append(f"{name} keeps every channel ({on['test_rmsep']:.3f})")
            else:
                low, high = full[name] if full[name] else (None, None)
                edge = result["edge_fraction"] * (high - low) if full[name] else None
                inside = edge is not None and on["window_nm"][0] >= low + edge and on["window_nm"][1] <= high - edge
                noisy.append(f"{name} keeps {_window(on, None)} nm" + (" (inside the clean centre)" if inside else
                                                                        " (noisy channels included)" if edge else "")
                             + f", test RMSEP {on['test_rmsep']:.3f} against {without['test_rmsep']:.3f} with every "
                             f"channel and {clean_off['test_rmsep']:.3f} on the clean file with every channel")
            if without["test_rmsep"] > without["mean_predictor_rmsep"]:
                off.append(name)
        if clean_on and clean_off:
            c = clean_off["test_rmsep_ci95"]
            if clean_on["window_nm"] is None:
                cost.append(f"on clean {name} the rule keeps every channel (no window beats the whole range by its margin): "
                            f"the same model, {clean_on['test_rmsep']:.3f}")
            else:
                inside = c["low"] <= clean_on["test_rmsep"] <= c["high"]
                cost.append(f"on clean {name} the window {_window(clean_on, None)} nm gives {clean_on['test_rmsep']:.3f} "
                            f"against {clean_off['test_rmsep']:.3f} with every channel, "
                            + ("inside" if inside else "outside") + f" the full range's interval ({c['low']:.3f}–{c['high']:.3f})")
    domain = []
    for name in names:
        validation = [r["domain"]["validation"] for r in runs if r["data"] == name and "validation" in r["domain"]]
        if validation:
            ns = sorted({v["n"] for v in validation})
            domain.append(f"{name} {_share([v['warning_share'] for v in validation])} / "
                          f"{_share([v['outlier_share'] for v in validation])} (n = {', '.join(map(str, ns))})")
    lines += ["", "With noisy edges: " + "; ".join(noisy) + "."
              + (" Without region selection, " + " and ".join(off) + (" deploy" if len(off) > 1 else " deploys") + " a model worse than the mean predictor "
                 "(the issue's finding)." if off else
                 " Without region selection no deployed model is worse than the mean predictor on these files.")
              + " On the clean files: " + "; ".join(cost) + ". Domain shares (validation, nominal 5 % warning / 1 % "
              "outlier, range over the runs): " + ", ".join(domain) + "; per split in the JSON."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/region-selection.json"))
    add_section_arguments(parser, "region-selection")
    args = parser.parse_args(argv)
    if render_only(args, parser, SECTION, render_section, SECTION_COMMAND):
        return 0
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (_, target) in SETS.items():
            for noisy in (False, True):
                for region in ("full", "cv"):
                    run = one_run(Path(tmp), name, target, noisy, region)
                    runs.append(run)
                    print(f"{name:8s} {'noisy' if noisy else 'clean'} region {region:4s} window {run['window_nm']} "
                          f"RMSEP {run['test_rmsep']:.3f} (mean predictor {run['mean_predictor_rmsep']:.3f})")
    path = write_result(args.output, {"runs": runs, "edge_fraction": EDGE_FRACTION, "edge_scale": EDGE_SCALE}, seeds=[SEED])
    if args.readme:
        update_section(args.readme, SECTION, render_section(json.loads(path.read_text())), SECTION_COMMAND)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
