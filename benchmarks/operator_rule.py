"""How the operator-adaptive PLS chooses (``trainer.pls_family.LINEAR_RULE``), decided on validation splits only.

    python benchmarks/operator_rule.py [--output benchmarks/results/operator-rule.json] [--readme reports/README.md]

For each data set with a validation split (tablets calibrate_1 -> validate_1, tecator train -> monitor, corn 1-50 ->
51-60 on each instrument; the spectral region every channel, as in the validation of both rules alike) the linear
family is screened once by cross-validation on the training split, then each rule (``min``: the lowest RMSECV;
``fewest-components-1se``: the fewest LVs within one standard error) picks scatter correction, operator and LVs, and
the refitted model predicts the validation split. The rule with the lower mean ratio of validation RMSEP to the
mean predictor's, over all sets and targets, is the default. No test split is read.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.peer_baselines import corn_file  # noqa: E402
from benchmarks.report_sections import parse_or_render, update_section  # noqa: E402
from nirstream.core.chemometrics.figures_of_merit import rmse  # noqa: E402
from nirstream.core.provenance import write_result  # noqa: E402
from nirstream.trainer.data_splits import load_protocol, protocol_from_data  # noqa: E402
from nirstream.trainer.operator_pls import RULES  # noqa: E402
from nirstream.trainer.pls_family import choose_linear_family, fit_deployable_pls, predict_linear, screen_linear_family  # noqa: E402

SECTION, SECTION_COMMAND = "operator-rule", "benchmarks/operator_rule.py --readme"
SEED = 0


def protocols(scratch: Path) -> dict:
    found = {"tablets": load_protocol("same-instrument", "assay"),
             "tecator": load_protocol("tecator", ["water", "fat", "protein"])}
    for instrument in ("m5", "mp5", "mp6"):
        found[f"corn-{instrument}"] = protocol_from_data(corn_file(instrument, scratch))
    return found


def run() -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for name, protocol in protocols(Path(scratch)).items():
            screened = screen_linear_family(protocol, random_state=SEED)
            Y_val = protocol.y(protocol.validation)
            mean = protocol.y(protocol.train).mean(axis=0)
            for rule in RULES:
                choice = choose_linear_family(protocol, rule, SEED, screened=screened)
                model, preprocessor = fit_deployable_pls(protocol, choice.variant, choice.latent_variables,
                                                         choice.operators)
                predicted = predict_linear(model, preprocessor, protocol.validation.X)
                for j, target in enumerate(protocol.targets):
                    validation = rmse(predicted[:, j], Y_val[:, j])
                    mean_rmsep = rmse(np.full(len(Y_val), mean[j]), Y_val[:, j])
                    rows.append({"data": name, "target": target, "rule": rule, "n_validation": len(Y_val),
                                 "variant": choice.variant, "operator": choice.operators[target],
                                 "latent_variables": choice.latent_variables[target], "validation_rmsep": validation,
                                 "mean_predictor_rmsep": mean_rmsep, "ratio": validation / mean_rmsep})
                    print(f"{name:9s} {target:9s} {rule:22s} {choice.variant}/{choice.operators[target]} "
                          f"{choice.latent_variables[target]} LV  validation {validation:.4g} (mean {mean_rmsep:.4g})", flush=True)
    return rows


def summarise(rows: list[dict]) -> dict:
    mean_ratio = {rule: float(np.mean([r["ratio"] for r in rows if r["rule"] == rule])) for rule in RULES}
    return {"mean_ratio": mean_ratio, "chosen": min(mean_ratio, key=mean_ratio.get)}


def render_section(result: dict) -> str:
    s = result["summary"]
    lines = ["# How the linear family chooses, decided on validation (issue 29)", "",
             f"`python {SECTION_COMMAND} reports/README.md` (JSON `benchmarks/results/operator-rule.json`, commit "
             f"{result['provenance']['commit'][:7]}, seed {SEED}): the operator-adaptive PLS screened once by repeated "
             "10-fold CV on each training split, then each rule picks; validation RMSEP over the mean predictor's on the "
             "validation split (no test split read). Mean ratio: "
             + ", ".join(f"`{rule}` {v:.3f}" for rule, v in s["mean_ratio"].items())
             + f"; default: `{s['chosen']}` (`trainer/pls_family.py` `LINEAR_RULE`).", "",
             "| set | target (n validation) | " + " | ".join(f"`{r}`: choice, validation RMSEP" for r in RULES) + " |",
             "|---|---|" + "---|" * len(RULES)]
    keys = dict.fromkeys((r["data"], r["target"]) for r in result["rows"])
    for data, target in keys:
        cells = []
        for rule in RULES:
            r = next(x for x in result["rows"] if (x["data"], x["target"], x["rule"]) == (data, target, rule))
            cells.append(f"{r['variant']}/{r['operator']}, {r['latent_variables']} LV: {r['validation_rmsep']:.3g}")
        n = next(x["n_validation"] for x in result["rows"] if (x["data"], x["target"]) == (data, target))
        lines.append(f"| {data} | {target} ({n}) | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_or_render(__doc__, "benchmarks/results/operator-rule.json", SECTION, SECTION_COMMAND, render_section, argv)
    if args is None:
        return 0
    rows = run()
    write_result(args.output, {"rows": rows, "summary": summarise(rows)}, seeds=[SEED], indent=1)
    print(json.dumps(summarise(rows)))
    if args.readme:
        update_section(args.readme, SECTION, render_section(json.loads(args.output.read_text())), SECTION_COMMAND)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
