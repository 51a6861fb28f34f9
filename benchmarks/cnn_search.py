"""Issue 29 item 3: does a CNN hyper-parameter search earn a place in the default ``nirstream train``?

    python benchmarks/cnn_search.py [--seeds 0 1 2] [--output benchmarks/results/cnn-search.json] [--readme reports/README.md]
    python benchmarks/cnn_search.py --readme reports/README.md --render-only

Each set trained as ``nirstream train --budget B`` does (family auto: the searched CNN against the operator-adaptive
PLS, the family chosen on validation), once per seed: tecator (fat; its monitor split validates and can rank
networks: each trial scored on validation) with a 90 s budget and the tablets (assay; validate_1 spans a tenth of the
training range: each trial scored by 3-fold CV on calibrate_1) with 6 min. The decision reads validation only: the
search would belong in the default where the searched CNN beats the PLS on validation for every seed (then the
default would deploy it); the test RMSEP is reported beside it, and chooses nothing. Wall time per run is the cost.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.report_sections import parse_or_render, update_section  # noqa: E402
from nirstream.core.provenance import write_result  # noqa: E402
from nirstream.trainer.train_settings import TrainSettings  # noqa: E402
from nirstream.trainer.training_run import run_training  # noqa: E402

SECTION, SECTION_COMMAND = "cnn-search", "benchmarks/cnn_search.py --readme"
SETS = {"tecator": {"protocol": "tecator", "targets": ["fat"], "budget": "90s", "test": "test"},
        "tablets": {"protocol": "same-instrument", "targets": ["assay"], "budget": "6m", "test": "test"}}


def run(name: str, seed: int, scratch: Path) -> dict:
    spec = SETS[name]
    settings = TrainSettings(protocol=spec["protocol"], targets=spec["targets"], search_budget=spec["budget"], seed=seed,
                             registry=scratch / f"{name}-{seed}", report_dir=scratch / "reports")
    summary = run_training(settings, verbose=0)
    target = spec["targets"][0]
    tests = summary["deployed"]["tests"][spec["test"]][target]
    cnn_tests = (summary["cnn"].get("tests") or {}).get(spec["test"], {}).get(target, {})
    search = summary.get("search") or {}
    row = {"data": name, "target": target, "seed": seed, "budget": spec["budget"],
           "scoring": search.get("scoring"), "trials": len(search.get("trials", [])),
           "best_trial_score": (search.get("best") or {}).get("score"),
           "deployed_family": summary["deployed"]["family"], "family_reason": summary["deployed"]["reason"],
           "validation_rmsep": summary["deployed"]["validation_rmsep"], "deployed_test_rmsep": tests.get("rmsep_ci95"),
           "cnn_test_rmsep": cnn_tests.get("rmsep_ci95"), "elapsed_seconds": summary["elapsed_seconds"]}
    print(f"{name} seed {seed}: {row['trials']} trials ({row['scoring']}), deployed {row['deployed_family']}, "
          f"validation {row['validation_rmsep']}, CNN test {row['cnn_test_rmsep']}, {row['elapsed_seconds']:.0f} s", flush=True)
    return row


def render_section(result: dict) -> str:
    rows = result["rows"]
    lines = ["# A CNN hyper-parameter search in the default? (issue 29)", "",
             f"`python {SECTION_COMMAND} reports/README.md` (JSON `benchmarks/results/cnn-search.json`, commit "
             f"{result['provenance']['commit'][:7]}, seeds {', '.join(map(str, result['seeds']))}): `nirstream train "
             "--budget` per set and seed, family auto. Tecator's monitor split ranks the trials; on the tablets "
             "validate_1 is too narrow, so each trial is scored by 3-fold CV on calibrate_1. The family is chosen on "
             "validation; test RMSEP reported only.", "",
             "| set | seed | budget | trials (scored by) | validation RMSEP CNN / PLS | deployed | CNN test RMSEP (95 % CI) | "
             "deployed test RMSEP | wall time (s) |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        v = r["validation_rmsep"]
        cnn, pls = (v.get("cnn") or {}).get(r["target"]), (v.get("pls") or {}).get(r["target"])
        c, d = r["cnn_test_rmsep"], r["deployed_test_rmsep"]
        lines.append(f"| {r['data']} ({r['target']}) | {r['seed']} | {r['budget']} | {r['trials']} ({r['scoring']}) | "
                     f"{cnn:.3g} / {pls:.3g} | {r['deployed_family'].upper()} | "
                     + (f"{c['rmsep']:.3g} ({c['low']:.3g}–{c['high']:.3g})" if c else "–") + " | "
                     + (f"{d['rmsep']:.3g}" if d else "–") + f" | {r['elapsed_seconds']:.0f} |")
    verdict = result["decision"]
    lines += ["", f"Decision (validation only): {verdict['text']}"]
    return "\n".join(lines) + "\n"


def decide(rows: list[dict]) -> dict:
    wins = {name: all((r["validation_rmsep"].get("cnn") or {}).get(r["target"], float("inf"))
                      < (r["validation_rmsep"].get("pls") or {}).get(r["target"], float("inf"))
                      for r in rows if r["data"] == name) for name in SETS if any(r["data"] == name for r in rows)}
    seconds = {name: max(r["elapsed_seconds"] for r in rows if r["data"] == name) for name in wins}
    every = all(wins.values())
    text = ("the searched CNN beat PLS on validation for every seed on every set: worth the default"
            if every else "the searched CNN did not beat PLS on validation for every seed on "
            + ", ".join(n for n, w in wins.items() if not w) + ", so the search stays opt-in (`--budget`); it costs "
            + ", ".join(f"{n} up to {s:.0f} s a run" for n, s in seconds.items()))
    return {"cnn_wins_validation_every_seed": wins, "search_in_default": every, "text": text}


def main(argv: list[str] | None = None) -> int:
    args = parse_or_render(__doc__, "benchmarks/results/cnn-search.json", SECTION, SECTION_COMMAND, render_section, argv,
                              sets={"nargs": "+", "choices": list(SETS), "default": list(SETS)},
                              seeds={"nargs": "+", "type": int, "default": [0, 1, 2]})
    if args is None:
        return 0
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.sets:
            for seed in args.seeds:
                rows.append(run(name, seed, Path(scratch)))
                write_result(args.output, {"seeds": args.seeds, "rows": rows, "decision": decide(rows)},
                             seeds=args.seeds, indent=1)
    if args.readme:
        update_section(args.readme, SECTION, render_section(json.loads(args.output.read_text())), SECTION_COMMAND)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
