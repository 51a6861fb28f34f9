"""The linear pretreatments operator-adaptive PLS chooses from, one name each, and their matrices.

Every operator here is linear in the spectrum (Savitzky–Golay derivatives, polynomial detrend, Norris–Williams gap
derivatives), so ``operator(X) = X @ M`` with ``M = operator(identity)``; a PLS fitted on ``X @ M`` is the linear model
``X @ (M @ coef)`` on the untreated features. That is why each target can have its own pretreatment while a bundle
still holds one preprocessor and one weight column per target, and the worker never runs the operator.

The bank is the usual NIR pretreatment vocabulary (derivative orders 1-2 at several window widths, detrend,
gap derivatives), fixed here once for every data set: cross-validation on the training split picks from it.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from sklearn.base import clone

from nirstream.core.chemometrics.steps.derivative import SavitzkyGolayDerivative
from nirstream.core.chemometrics.steps.detrend import PolynomialDetrend
from nirstream.core.chemometrics.steps.norris_williams import NorrisWilliamsDerivative

IDENTITY = "identity"


def _bank() -> dict[str, object]:
    bank: dict[str, object] = {IDENTITY: None}
    for window in (7, 11, 15, 21, 31):
        bank[f"sg1-w{window}"] = SavitzkyGolayDerivative(deriv=1, window_length=window, polyorder=2)
    for window in (11, 15, 21, 31):
        bank[f"sg2-w{window}"] = SavitzkyGolayDerivative(deriv=2, window_length=window, polyorder=2)
    bank["detrend1"] = PolynomialDetrend(degree=1)
    bank["detrend2"] = PolynomialDetrend(degree=2)
    bank["nw1-g5-s5"] = NorrisWilliamsDerivative(gap=5, smoothing=5, order=1)
    bank["nw1-g11-s5"] = NorrisWilliamsDerivative(gap=11, smoothing=5, order=1)
    bank["nw2-g5-s5"] = NorrisWilliamsDerivative(gap=5, smoothing=5, order=2)
    return bank


OPERATORS = _bank()
OPERATOR_NAMES = tuple(OPERATORS)


@lru_cache(maxsize=64)
def operator_matrix(name: str, n_channels: int) -> np.ndarray:
    """``M`` (n_channels, n_channels) with ``operator(X) == X @ M`` for any X of that width; read-only, and built once
    per width (the screen asks for each operator once per shared preprocessor and target)."""
    if name not in OPERATORS:
        raise ValueError(f"unknown operator {name!r}; choose from {', '.join(OPERATOR_NAMES)}")
    identity = np.eye(n_channels)
    step = OPERATORS[name]
    matrix = identity if step is None else clone(step).fit(identity).transform(identity)
    matrix.flags.writeable = False
    return matrix
