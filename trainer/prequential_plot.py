"""The prequential run as a picture: predictions, lab values and model versions over time (PNG, matplotlib Agg)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nirstream.trainer.prequential import PrequentialResult


def plot_prequential(result: PrequentialResult, path: Path, unit: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = result.steps
    start = steps[0].time
    hours = np.array([s.time - start for s in steps]) / 3600
    reference = np.array([s.reference for s in steps])
    labelled = np.isfinite(reference)
    figures = result.figures["rmsep"]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 6.5), sharex=True, height_ratios=(3, 1))
    top.plot(hours, [s.static for s in steps], color="0.6", lw=1,
             label=f"static model (RMSEP {figures['static']['rmsep']:.3g})")
    top.plot(hours, [s.mean for s in steps], color="tab:green", lw=1, ls="--",
             label=f"mean of known lab values (RMSEP {figures['mean']['rmsep']:.3g})")
    top.plot(hours, [s.loop for s in steps], color="tab:blue", lw=1.2,
             label=f"learning loop (RMSEP {figures['loop']['rmsep']:.3g})")
    top.scatter(hours[labelled], reference[labelled], s=12, color="black", zorder=3, label="lab values")
    for version in result.versions[1:]:
        for axis in (top, bottom):
            axis.axvline((version.serving_from - start) / 3600, color="tab:blue", lw=0.6, alpha=0.5)
    difference = result.figures["loop_minus_static"]
    top.set_title(f"{result.target}: prequential RMSEP over {result.figures['pairs']} lab values; loop - static "
                  f"{difference['difference']:+.3g} ({difference['low']:+.3g} to {difference['high']:+.3g})", fontsize=10)
    top.set_ylabel(f"{result.target}" + (f" ({unit})" if unit else ""))
    top.legend(fontsize=8, loc="best")
    bottom.step(hours, [s.version for s in steps], where="post", color="tab:blue")
    for retrain in result.retrains:
        marker = {"promoted": "^", "rejected": "x", "skipped": "."}[retrain.status]
        serving = max(v.version for v in result.versions if v.serving_from <= retrain.at)
        bottom.plot((retrain.at - start) / 3600, serving,
                    marker, color="tab:red" if retrain.status == "rejected" else "tab:blue", ms=6)
    bottom.set_ylabel("model version")
    bottom.set_xlabel("hours since the first evaluated spectrum (retrains: ^ promoted, x rejected)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
