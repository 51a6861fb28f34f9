"""Evaluation report: JSON for machines, HTML with PNG plots for people."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from nirstream.core.chemometrics.figures_of_merit import rmse  # noqa: E402


def plot_training_curves(history: dict[str, list[float]], path: Path) -> Path:
    fig, (loss_ax, lr_ax) = plt.subplots(1, 2, figsize=(10, 3.5))
    epochs = np.arange(1, len(history["loss"]) + 1)
    loss_ax.semilogy(epochs, history["loss"], label="training (augmented)")
    if "val_loss" in history:
        loss_ax.semilogy(epochs, history["val_loss"], label="validation")
    loss_ax.set(xlabel="epoch", ylabel="MSE (scaled target)", title="Training curves")
    loss_ax.legend()
    if "learning_rate" in history:
        lr_ax.semilogy(epochs, history["learning_rate"])
    lr_ax.set(xlabel="epoch", ylabel="learning rate", title="ReduceLROnPlateau schedule")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_predicted_vs_reference(results: dict[str, tuple[np.ndarray, np.ndarray]], unit: str, title: str, path: Path,
                                half_width: float | None = None) -> Path:
    """``results``: label -> (reference, predicted); ``half_width``: the prediction interval, drawn as a band."""
    fig, (scatter_ax, residual_ax) = plt.subplots(1, 2, figsize=(11, 4.5))
    low = min(min(r.min(), p.min()) for r, p in results.values())
    high = max(max(r.max(), p.max()) for r, p in results.values())
    for label, (reference, predicted) in results.items():
        rmsep = rmse(predicted, reference)
        scatter_ax.scatter(reference, predicted, s=9, alpha=0.6, label=f"{label} (RMSEP {rmsep:.2f})")
        residual_ax.scatter(reference, predicted - reference, s=9, alpha=0.6, label=label)
    scatter_ax.plot([low, high], [low, high], "k--", lw=1)
    if half_width is not None:
        scatter_ax.fill_between([low, high], [low - half_width, high - half_width], [low + half_width, high + half_width],
                                color="grey", alpha=0.15, label=f"prediction interval ±{half_width:.2f}")
        residual_ax.axhspan(-half_width, half_width, color="grey", alpha=0.15)
    scatter_ax.set(xlabel=f"reference [{unit}]", ylabel=f"predicted [{unit}]", title=title)
    scatter_ax.legend(fontsize=8)
    residual_ax.axhline(0, color="k", lw=1)
    residual_ax.set(xlabel=f"reference [{unit}]", ylabel=f"residual [{unit}]", title="Residuals")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _first_conv(model: Any) -> tuple[Any, Any]:
    """(the model that owns it, the first Conv1D layer), searching nested members depth-first."""
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv1D):
            return model, layer
        if isinstance(layer, keras.Model):
            try:
                return _first_conv(layer)
            except LookupError:
                continue
    raise LookupError(f"{model.name} has no Conv1D layer")


def plot_kernel_activations(model: Any, reference_features: np.ndarray, wavelengths: np.ndarray, path: Path) -> Path:
    """First convolution's kernels and their activations on the reference spectrum (paper, Fig. 6).

    For a seed ensemble (members nested in one model) the first member's are shown.
    """
    import keras

    owner, conv = _first_conv(model)
    kernels = conv.get_weights()[0][:, 0, :]  # (kernel_size, filters)
    probe = keras.Model(owner.inputs, conv.output)
    activations = probe.predict(reference_features.reshape(1, -1, 1).astype(np.float32), verbose=0)[0]
    fig, axes = plt.subplots(3, 1, figsize=(10, 9))
    axes[0].plot(wavelengths, reference_features, color="k")
    axes[0].set(title="Reference spectrum (mean training spectrum, preprocessed)", xlabel="wavelength [nm]")
    axes[1].plot(kernels)
    axes[1].set(title="First-layer kernels (the paper found derivative- and smoothing-like shapes)", xlabel="kernel position")
    offsets = np.arange(activations.shape[1]) * (np.ptp(activations) or 1.0) * 0.6
    axes[2].plot(wavelengths, activations + offsets)
    axes[2].set(title="First-layer activations on the reference spectrum (offset per filter)", xlabel="wavelength [nm]")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else html.escape(str(value))


def metrics_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(row.get(c, ''))}</td>" for c in columns) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _ci(entry: dict) -> str:
    return f"{entry['low']:.3f} – {entry['high']:.3f}"


def summary_rows(summary: dict[str, Any]) -> tuple[list[dict], list[dict], list[dict]]:
    """Rows of the report's three tables: figures of merit, CNN − PLS differences, interval coverage."""
    figures, differences, coverage = [], [], []
    mean_predictor = summary.get("mean_predictor") or {}  # test set -> target -> RMSEP of predicting the training mean
    version = summary.get("version")
    deployed = summary["deployed"]["family"]
    for name, per_target in summary["deployed"]["tests"].items():
        for target, m in per_target.items():
            figures.append({"model": f"{deployed.upper()} {summary['variant']} (v{version}, deployed)", "target": target,
                            "test set": name, **m, "rmsep 95% CI": _ci(m["rmsep_ci95"]),
                            "mean predictor": m.get("mean_predictor_rmsep", "")})
    for name, per_target in (summary["cnn"].get("tests", {}) if deployed != "cnn" else {}).items():
        for target, m in per_target.items():
            figures.append({"model": f"CNN {summary['variant']} (not deployed)", "target": target, "test set": name, **m,
                            "rmsep 95% CI": _ci(m["rmsep_ci95"]), "mean predictor": m.get("mean_predictor_rmsep", "")})
    for target, pls in (summary.get("pls") or {}).items():
        for rule in ("min", "1se"):
            for name, m in pls[f"cv_{rule}"]["tests"].items():
                figures.append({"model": f"PLS {summary['variant']} (baseline)", "target": target, "test set": name,
                                "lv": pls[f"cv_{rule}"]["lv"], "note": f"LVs by CV ({rule})", **m,
                                "mean predictor": mean_predictor.get(name, {}).get(target, "")})
        for name, m in pls.get("oracle_chosen_on_test", {}).items():
            figures.append({"model": f"PLS {summary['variant']} (baseline)", "target": target, "test set": name,
                            "note": "ORACLE: LVs chosen on this test set", **m,
                            "mean predictor": mean_predictor.get(name, {}).get(target, "")})
    for target, per_test in (summary.get("cnn_minus_pls") or {}).items():
        for name, d in per_test.items():
            differences.append({"target": target, "test set": name, "RMSEP CNN − PLS": d["difference"],
                                "95% CI": _ci(d), "verdict": {"a better": "CNN better", "b better": "PLS better"}.get(
                                    d["verdict"], d["verdict"])})
    intervals = summary.get("intervals", {})
    for name, per_target in intervals.get("test_coverage", {}).items():
        for target, c in per_target.items():
            coverage.append({"target": target, "test set": name, "n": c["n"], "nominal": intervals["coverage"],
                             "empirical coverage": c["coverage"], "interval width": c["width"]})
    return figures, differences, coverage


def _search_table(search: dict | None) -> str:
    if not search:
        return ""
    columns = ["trial", "score", "weights", "epochs_run", "seconds", "depth", "filters", "kernel_size", "dense_units",
               "dropout", "noise", "learning_rate", "n_copies", "augmentation_strength"]
    rows = sorted(search["trials"], key=lambda t: t["score"])
    scoring = search.get("scoring", "validation")
    return (f"<h2>CNN hyper-parameter search ({len(rows)} trials in {search['budget_seconds']:.0f} s, scored by {scoring}; "
            f"lowest score deployed: trial {search['best']['trial']})</h2>" + metrics_table(rows, columns))


def _left_out_table(left_out: list[dict] | None) -> str:
    if not left_out:
        return ""
    return ("<h2>Spectra left out (the worker would dead-letter them; in test sets: not predicted)</h2>"
            + metrics_table(left_out, ["split", "row", "sample", "reason", "detail"]))


def _domain_warnings(summary: dict[str, Any]) -> str:
    """The extrapolation warnings, for the top of the report."""
    warnings = (summary.get("domain") or {}).get("warnings") or []
    return "".join(f'<p style="color:#b00"><b>WARNING</b>: {html.escape(w)}</p>' for w in warnings)


def _domain_section(domain: dict | None) -> str:
    """Per split: the shares the bundle's own checks flag (as the worker flags them), and the nominal-rate check."""
    if not domain:
        return ""
    rows = [{"split": name, "n": e["n"], "beyond warning limits": f"{e['warning']['count']} ({e['warning']['share']:.1%})",
             "beyond outlier limits": f"{e['outlier']['count']} ({e['outlier']['share']:.1%})",
             "outside the domain": "yes" if e["outside_domain"] else "no"} for name, e in domain["per_split"].items()]
    return (f"<h2>Applicability domain (the model's own T², Q and EMSC-range flags, as the worker raises them)</h2>"
            f"<p>Nominal on spectra of the calibration's kind: 5 % beyond the warning limits, 1 % beyond the outlier "
            f"limits (training shares are in-sample). A split with more than {domain['extrapolation_share']:.0%} beyond "
            f"the outlier limits lies outside the domain. {html.escape(domain.get('nominal_check', ''))}</p>"
            + metrics_table(rows, ["split", "n", "beyond warning limits", "beyond outlier limits", "outside the domain"]))


def _region_section(region: dict | None) -> str:
    """The spectral region the model sees and the cross-validation figures behind it."""
    if not region:
        return ""
    table = metrics_table(region["candidates"], ["first_nm", "last_nm", "channels", "score", "standard_error", "chosen"])
    return (f"<h2>Spectral region</h2><p>{html.escape(region['how'])}. Score: RMSECV / training standard deviation, "
            f"mean over targets.</p>" + (table if region["candidates"] else ""))


def write_report(directory: Path, summary: dict[str, Any], images: list[Path]) -> Path:
    """Write ``report.json`` (everything) and ``report.html`` (tables + plots); return the HTML path."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "report.json").write_text(json.dumps(summary, indent=2, default=str))
    figures, differences, coverage = summary_rows(summary)
    figure_columns = ["model", "target", "test set", "n", "rmsep", "rmsep 95% CI", "mean predictor", "bias", "sep", "r2",
                      "slope", "lv", "note"]
    choices = "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>" for k, v in summary.get("data_choices", {}).items())
    units = ", ".join(f"{t} [{u or '-'}]" for t, u in summary.get("units", {}).items())
    plots = "".join(f'<figure><img src="{html.escape(p.name)}" width="900"></figure>' for p in images)
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>nirstream evaluation</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:auto}}table{{border-collapse:collapse;margin-bottom:1em}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}</style></head><body>
<h1>nirstream evaluation: {html.escape(summary.get("protocol", ""))}</h1>
{_domain_warnings(summary)}
<p>Targets {html.escape(units)}, variant <b>{html.escape(summary.get("variant", ""))}</b>,
model version {html.escape(str(summary.get("version")))}; spectra {html.escape(str(summary.get("n", "")))}.</p>
<h2>Which data chose what</h2><ul>{choices}</ul>
<p>Deployed family: {html.escape(summary["deployed"]["reason"])}.</p>
<h2>Figures of merit (95 % bootstrap interval of the RMSEP over the test samples)</h2>
<p>"mean predictor": the RMSEP of predicting the training mean on the same spectra (a model without skill).</p>
{metrics_table(figures, figure_columns) if figures else "<p>No test rows: evaluate later with nirstream evaluate --data.</p>"}
<h2>CNN − PLS, the two candidates that competed for deployment: paired bootstrap</h2>
<p>A model "beats" the other only where the whole 95 % interval of the difference lies on one side of 0.</p>
{metrics_table(differences, ["target", "test set", "RMSEP CNN − PLS", "95% CI", "verdict"]) if differences else
 "<p>No CNN and PLS candidates competed (one family fitted or asked for).</p>"}
<h2>Prediction intervals</h2>
<p>{html.escape(summary.get("intervals", {}).get("calibration", ""))}. Calibrated on validation data only
(which also stopped training early: the intervals may be slightly narrow); the test coverage is a check.</p>
{metrics_table(coverage, ["target", "test set", "n", "nominal", "empirical coverage", "interval width"]) if coverage else ""}
{_search_table(summary.get("search"))}
{_left_out_table(summary.get("left_out"))}
{_region_section(summary.get("region"))}
{_domain_section(summary.get("domain"))}
<p>Promotion (decided on {html.escape(str(summary.get("promotion", {}).get("gate_data", "")))} data):
{html.escape(str(summary.get("promotion", {}).get("reason", "")))}</p>
{plots}</body></html>"""
    path = directory / "report.html"
    path.write_text(page)
    return path
