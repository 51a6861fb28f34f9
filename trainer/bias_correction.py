"""The cheap first response to a biased analyzer: a slope/bias correction (SBC) of the champion's predictions,
fitted on that analyzer's recent lab pairs, published as a calibration-transfer artifact the worker applies at
once (``core.artifacts.transfer``; the worker already serves SBC transfers).

Time-forward, like the retrain gate: of the analyzer's newest pairs, the newest ``judge_pairs`` judge and the
ones before them (at least ``RetrainPolicy.bias_min_pairs``: ISO 12099's 10 to set a bias) fit. A target's
correction is kept only when the paired bootstrap interval of RMSEP(corrected) - RMSEP(uncorrected) on the
judging pairs lies below 0; the others stay uncorrected (slope 1, bias 0). Nothing is published when no target
improves. The champion's own predictions are recomputed from the stored spectra (without any active transfer),
so a new SBC replaces an older one instead of stacking on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nirstream.core.artifacts.transfer import CalibrationTransfer, TransferMetadata
from nirstream.core.chemometrics.figures_of_merit import paired_rmsep_difference
from nirstream.core.serving.predictor import Predictor
from nirstream.trainer.plant_store import PlantStore
from nirstream.trainer.service_settings import GatePolicy, RetrainPolicy

JUDGE_PAIRS = 10  # the newest pairs that judge a correction (the fitting ones come before them)


@dataclass
class BiasCorrection:
    transfer: CalibrationTransfer | None  # None: no target improved
    reason: str
    figures: dict[str, Any] = field(default_factory=dict)


def fit_bias_correction(store: PlantStore, champion: Predictor, analyzer: str, retrain: RetrainPolicy,
                        gate: GatePolicy, by: str) -> BiasCorrection:
    pairs = [p for p in store.pairs(analyzer=analyzer) if p.grid == champion.grid
             and any(t in p.reference for t in champion.targets)][-(retrain.bias_window + JUDGE_PAIRS):]
    if len(pairs) < retrain.bias_min_pairs + JUDGE_PAIRS:
        return BiasCorrection(None, f"{analyzer}: {len(pairs)} lab pairs; an SBC needs {retrain.bias_min_pairs} to fit "
                                    f"and {JUDGE_PAIRS} newer ones to judge it")
    predicted = champion.predict(np.array([p.spectrum for p in pairs])).values  # no transfer applied
    fit, judged = slice(0, len(pairs) - JUDGE_PAIRS), slice(len(pairs) - JUDGE_PAIRS, len(pairs))
    slope, bias, figures = {}, {}, {}
    for j, target in enumerate(champion.targets):
        rows = np.array([target in p.reference for p in pairs])
        reference = np.array([p.reference.get(target, np.nan) for p in pairs])
        fit_rows, judge_rows = rows.copy(), rows.copy()
        fit_rows[judged], judge_rows[fit] = False, False
        if fit_rows.sum() < retrain.bias_min_pairs or judge_rows.sum() < 2:
            continue
        b, a = np.polyfit(predicted[fit_rows, j], reference[fit_rows], 1)
        corrected = b * predicted[judge_rows, j] + a
        difference = paired_rmsep_difference(reference[judge_rows], corrected, predicted[judge_rows, j],
                                             confidence=gate.confidence)
        figures[target] = {"slope": float(b), "bias": float(a), "fit_pairs": int(fit_rows.sum()),
                           "judge_pairs": int(judge_rows.sum()), "difference": difference}
        if difference["high"] < 0:
            slope[target], bias[target] = float(b), float(a)
    shown = "; ".join(f"{t} {f['difference']['difference']:+.4g} ({f['difference']['low']:+.4g}.."
                      f"{f['difference']['high']:+.4g})" for t, f in figures.items())
    if not slope:
        return BiasCorrection(None, f"{analyzer}: a slope/bias correction does not help on its newest pairs: {shown}",
                              figures)
    metadata = TransferMetadata(
        analyzer=analyzer, method="sbc", model_version=champion.version, grid=champion.grid,
        targets=list(champion.targets), standards=[p.message_id for p in pairs[fit]],
        prediction_slope={t: slope.get(t, 1.0) for t in champion.targets},
        prediction_bias={t: bias.get(t, 0.0) for t in champion.targets},
        parameters={"source": "recent lab pairs (trainer service)", "judged_on_newest": JUDGE_PAIRS},
        figures=figures, by=by)
    return BiasCorrection(CalibrationTransfer(metadata), f"{analyzer}: slope/bias correction of {sorted(slope)} helps "
                                                         f"on its newest pairs: {shown}", figures)
