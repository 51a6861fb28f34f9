"""Per split: how many spectra the model's own applicability checks flag, as the worker flags them (``Predictor``:
T², Q and the EMSC coefficient range), and the warning when a split lies outside the domain.

Two uses. On spectra of the calibration's own kind held out of the fit (validation), the shares must be near the
nominal rates (5 % warning, 1 % outlier): the report checks it with a Clopper-Pearson 95 % interval, so that a flag on
a process spectrum is news. On any split, more than ``EXTRAPOLATION_SHARE`` flagged outlier (ten times the nominal
rate) means the split lies outside the domain: its figures are extrapolation, said on the console and at the top of
the report or ``evaluate``'s output.
"""

from __future__ import annotations

import numpy as np

from nirstream.core.chemometrics.domain import FLAG_OUTLIER, FLAG_WARNING, NOMINAL_RATES

EXTRAPOLATION_SHARE = 0.10


def flag_shares(flags: np.ndarray) -> dict:
    """Counts and shares of ``flags`` (of predicted spectra): beyond the warning limits (warning or outlier) and
    beyond the outlier limits, each with its Clopper-Pearson 95 % interval and whether the nominal rate lies in it."""
    n = int(len(flags))
    beyond = {FLAG_WARNING: int(np.isin(flags, (FLAG_WARNING, FLAG_OUTLIER)).sum()),
              FLAG_OUTLIER: int((flags == FLAG_OUTLIER).sum())}
    entry: dict = {"n": n}
    for level, count in beyond.items():
        low, high = clopper_pearson(count, n)
        entry[level] = {"count": count, "share": count / n if n else float("nan"), "ci95": [low, high],
                        "nominal": NOMINAL_RATES[level], "nominal_inside": bool(low <= NOMINAL_RATES[level] <= high)}
    entry["outside_domain"] = bool(n and beyond[FLAG_OUTLIER] / n > EXTRAPOLATION_SHARE)
    return entry


def clopper_pearson(count: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact binomial interval of a share ``count / n``."""
    if n == 0:
        return 0.0, 1.0
    from scipy import stats

    alpha = 1 - confidence
    low = 0.0 if count == 0 else float(stats.beta.ppf(alpha / 2, count, n - count + 1))
    high = 1.0 if count == n else float(stats.beta.ppf(1 - alpha / 2, count + 1, n - count))
    return low, high


def extrapolation_warnings(per_split: dict[str, dict]) -> list[str]:
    """One sentence per split that lies outside the model's domain."""
    return [f"{name}: {e[FLAG_OUTLIER]['count']} of {e['n']} spectra ({e[FLAG_OUTLIER]['share']:.0%}) lie outside the "
            f"model's applicability domain (T², Q or EMSC range beyond the outlier limits; more than "
            f"{EXTRAPOLATION_SHARE:.0%} flagged): the figures below are extrapolation"
            for name, e in per_split.items() if e["outside_domain"]]


def nominal_check(name: str, entry: dict) -> str:
    """Whether held-out spectra of the calibration's kind (split ``name``) are flagged at the nominal rates, in words."""
    parts = []
    for level in (FLAG_WARNING, FLAG_OUTLIER):
        e = entry[level]
        parts.append(f"{e['count']} of {entry['n']} beyond the {level} limits ({e['share']:.1%}, 95 % CI "
                     f"{e['ci95'][0]:.1%}-{e['ci95'][1]:.1%}, nominal {e['nominal']:.0%}: "
                     f"{'consistent' if e['nominal_inside'] else 'NOT consistent'})")
    return f"{name} (held out, the calibration's own kind): " + "; ".join(parts)
