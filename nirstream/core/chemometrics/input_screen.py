"""The worker's input screen: which spectra the fitted preprocessing steps cannot make features of, and which lie
beyond what training saw. It walks the very steps ``SpectralPreprocessor.transform`` runs, checking between them.
This module learns the limits; the walk itself, NumPy only, is ``fitted/input_screen.py``.

Limits come from the training spectra (input grid, not augmented):

* degenerate -- spread (std over the window's channels) at or below ``SPREAD_FLOOR_FRACTION`` of the flattest training
  spectrum's; after a derivative, the same for the derivative's spread; EMSC scale (the reference coefficient) at or
  below ``SCALE_FLOOR_FRACTION`` of the smallest training scale (zero and negative always), or not finite; features
  that overflow. Such rows get zero features and a reason, and must not be predicted.
* outside -- EMSC coefficients beyond the accepted range: predict, flag outlier. The range is the wider of (a) the
  training range widened by ``COEFFICIENT_MARGIN`` of its width on each side (distribution-free) and (b) the normal
  prediction interval for one new spectrum, mean ± t(n−1)·s·√(1+1/n), at ``COEFFICIENT_CONFIDENCE`` jointly over the
  coefficients (Bonferroni; Hahn & Meeker, *Statistical Intervals*, 1991). (b) carries the small-sample factor: a
  range learnt from 16 spectra is too narrow for the 17th, while from hundreds (a) already covers it.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.pipeline import Pipeline

from nirstream.core.chemometrics.fitted.input_screen import ScreenedFeatures, ScreenLimits, apply_steps

__all__ = ["InputScreen", "ScreenedFeatures", "accepted_coefficient_range"]

SPREAD_FLOOR_FRACTION = 0.01  # flatter than 1 % of the flattest training spectrum: nearly constant
SCALE_FLOOR_FRACTION = 0.01  # EMSC scale below 1 % of the smallest training scale: no usable signal
COEFFICIENT_MARGIN = 0.5  # EMSC coefficients beyond the training range widened by half its width: outlier
COEFFICIENT_CONFIDENCE = 0.999  # joint over the EMSC terms: a gross check beside T² and Q (0.1 % of in-domain spectra)


def accepted_coefficient_range(coefficients: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The EMSC coefficient range (low, high per term) a spectrum of the training spectra's kind falls in; see above."""
    from scipy import stats  # fitting only: the worker's cold start skips scipy.stats

    low, high = coefficients.min(axis=0), coefficients.max(axis=0)
    margin = COEFFICIENT_MARGIN * (high - low)
    n, terms = coefficients.shape
    if n < 3:
        return low - margin, high + margin
    t = stats.t.ppf(1 - (1 - COEFFICIENT_CONFIDENCE) / (2 * terms), n - 1)
    half = t * coefficients.std(axis=0, ddof=1) * np.sqrt(1 + 1 / n)
    mean = coefficients.mean(axis=0)
    return np.minimum(low - margin, mean - half), np.maximum(high + margin, mean + half)


class InputScreen(BaseEstimator):
    """Limits learnt by walking training spectra through fitted ``steps``; ``screen`` walks a batch the same way.

    Parameters
    ----------
    steps : Pipeline
        The fitted preprocessing steps (names ``window``, ``derivative``, ``snv``, ``emsc``, ``scaling``).

    Attributes
    ----------
    spread_floor_ : float       -- window spread at or below which a spectrum is degenerate
    derivative_floor_ : float   -- the same for the derivative's spread (0 without a derivative)
    scale_floor_ : float        -- EMSC reference coefficient at or below which a spectrum is degenerate
    coefficient_low_, coefficient_high_ : ndarray or None -- accepted EMSC coefficient range (else outlier)
    """

    def __init__(self, steps: Pipeline | None = None):
        self.steps = steps

    def fit(self, X, y=None) -> InputScreen:
        """Learn the limits from training spectra ``X`` (float64, input grid, already validated)."""
        self.derivative_floor_ = self.scale_floor_ = 0.0
        self.coefficient_low_ = self.coefficient_high_ = None
        for name, step, before, after in apply_steps(self.steps.steps, X):
            if name == "window":
                self.spread_floor_ = float(SPREAD_FLOOR_FRACTION * after.std(axis=1).min())
            elif name == "derivative":
                # A straight line has no 2nd derivative (and a constant no 1st): nothing left for SNV or the model.
                self.derivative_floor_ = float(SPREAD_FLOOR_FRACTION * after.std(axis=1).min())
            elif name == "emsc":
                coefficients = step.coefficients(before)
                self.coefficient_low_, self.coefficient_high_ = accepted_coefficient_range(coefficients)
                self.scale_floor_ = float(max(0.0, SCALE_FLOOR_FRACTION * coefficients[:, 0].min()))
        return self

    def limits(self) -> ScreenLimits:
        """The learnt limits, as the worker holds them."""
        return ScreenLimits.from_state(vars(self))

    def screen(self, X: np.ndarray) -> ScreenedFeatures:
        """Features of validated spectra ``X`` without ever raising on finite input, and what was found per spectrum."""
        return self.limits().screen([(name, step.fitted()) for name, step in self.steps.steps], X)
