"""The guard after a promotion: the new champion's first lab pairs against the previous champion's last ones.

The two models predicted different samples (one after the other), so the comparison is unpaired: RMSEP of the
new champion's first ``pairs`` errors minus the previous champion's last ``pairs`` errors, with a bootstrap
interval that resamples each set on its own. The new champion is rolled back only when the interval lies above
0 for some target (worse beyond the interval); otherwise it stays and is not judged again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


from nirstream.core.chemometrics.figures_of_merit import unpaired_rmsep_difference
from nirstream.trainer.plant_store import PlantStore, prediction_errors


@dataclass(frozen=True)
class GuardVerdict:
    roll_back: bool
    ready: bool  # enough pairs of both models to judge
    reason: str
    figures: dict[str, Any] = field(default_factory=dict)


def judge_promotion(store: PlantStore, champion: str, previous: str, pairs: int, confidence: float) -> GuardVerdict:
    new = prediction_errors(store.pairs(model_version=champion, spectra=False)[:pairs])
    old = prediction_errors(store.pairs(model_version=previous, spectra=False)[-pairs:])
    targets = sorted(t for t in new if t in old and len(new[t]) >= pairs and len(old[t]) >= 2)
    if not targets:
        counts = {t: len(e) for t, e in new.items()}
        return GuardVerdict(False, False, f"waiting for {pairs} lab pairs of version {champion} (has {counts or 0})")
    figures = {t: unpaired_rmsep_difference(new[t][:pairs], old[t], confidence=confidence) for t in targets}
    worse = [t for t in targets if figures[t]["low"] > 0]
    shown = "; ".join(f"{t} {f['difference']:+.4g} ({f['low']:+.4g}..{f['high']:+.4g})" for t, f in figures.items())
    if worse:
        return GuardVerdict(True, True, f"version {champion}'s first {pairs} lab pairs are worse than version "
                                        f"{previous}'s last ones: {shown}", figures)
    return GuardVerdict(False, True, f"version {champion} holds against version {previous}: {shown}", figures)
