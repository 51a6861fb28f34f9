"""Spectral data augmentation: random baseline offset, slope, multiplicative scale and noise.

Each augmented spectrum is ``m * x + std_ * (beta + (s - 1) * (a - 0.5)) + noise`` with the
axis ``a`` running from 0 to 1 over the channels and

* ``beta ~ U(-offset, offset)``           (baseline offset, in units of the data's std)
* ``s    ~ U(1 - slope, 1 + slope)``      (baseline slope: the ends move by ``±(s-1)/2`` std)
* ``m    ~ U(1 - scale, 1 + scale)``      (multiplicative scatter / path length)
* ``noise ~ N(0, (noise * std_)**2)``     per channel, off by default

``std_`` is the global standard deviation of the data given to ``fit``, so the same settings
mean the same thing on raw absorbances and on globally scaled spectra.

One design for every augmentation: a seeded step (``RandomAugmentation``: ``fit`` learns the data's spread,
``transform`` perturbs with fresh draws) and ``augmented_copies``, which runs a chain of fitted steps over
``n_copies`` copies of a training set. ``SpectralAugmenter`` is such a step and its own chain of one;
``shape_augmentation.ShapeAugmenter`` chains the steps EMSC does not undo.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted, validate_data


class RandomAugmentation(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """A seeded augmentation step. ``fit`` validates, keeps the data's global spread (``std_``: amplitudes are relative
    to it) and seeds the generator from ``random_state``; ``transform`` perturbs every spectrum once, fresh draws on
    every call. Subclasses say what else they learn (``_learn``) and how they perturb (``_perturb``)."""

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        X = validate_data(self, X, dtype=np.float64)
        spread = float(X.std())
        self.std_ = spread if spread > 0 else 1.0
        self._rng = check_random_state(self.random_state)
        self._learn(X)
        return self

    def _learn(self, X: np.ndarray) -> None:
        """Anything else the step learns from the data."""

    def transform(self, X):
        check_is_fitted(self, "std_")
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return self._perturb(X, self._rng)

    def _perturb(self, X: np.ndarray, rng: np.random.RandomState) -> np.ndarray:
        raise NotImplementedError


def augmented_copies(X, y, chain: Sequence[RandomAugmentation], n_copies: int,
                     include_original: bool) -> tuple[np.ndarray, np.ndarray]:
    """``(X_augmented, y_repeated)``: the original spectra (if asked), then ``n_copies`` copies, each passed through
    the fitted ``chain`` in order."""
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y)
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"X has {X.shape[0]} spectra but y has {y.shape[0]} values")
    copies = [X] if include_original else []
    for _ in range(n_copies):
        copy = X
        for step in chain:
            copy = step.transform(copy)
        copies.append(copy)
    return np.concatenate(copies), np.concatenate([y] * len(copies))


class SpectralAugmenter(RandomAugmentation):
    """Random baseline/scale perturbation of spectra (Bjerrum et al. 2017), seeded.

    ``transform`` perturbs every spectrum once (fresh draws on every call);
    ``fit_resample`` returns ``n_copies`` perturbed copies of the training set with targets,
    for enlarging a training set before fitting a CNN or a PLS model.

    Parameters
    ----------
    offset, slope, scale : float
        Half-widths of the uniform ranges above. Defaults follow the paper's notebooks.
    noise : float, default=0.0
        Standard deviation of added white noise, in units of the data's std.
    n_copies : int, default=100
        Augmented copies per spectrum made by ``fit_resample``.
    include_original : bool, default=True
        Whether ``fit_resample`` keeps the unperturbed spectra as well.
    random_state : int, RandomState or None
        Seed: the same seed and the same calls give the same spectra.
    """

    _parameter_constraints: dict = {
        "offset": [Interval(Real, 0, None, closed="left")],
        "slope": [Interval(Real, 0, None, closed="left")],
        "scale": [Interval(Real, 0, 1, closed="left")],  # < 1: the multiplier stays positive
        "noise": [Interval(Real, 0, None, closed="left")],
        "n_copies": [Interval(Integral, 0, None, closed="left")],
        "include_original": ["boolean"],
        "random_state": ["random_state"],
    }

    def __init__(self, offset: float = 0.1, slope: float = 0.05, scale: float = 0.1, noise: float = 0.0,
                 n_copies: int = 100, include_original: bool = True, random_state=None):
        self.offset, self.slope, self.scale = offset, slope, scale
        self.noise = noise
        self.n_copies = n_copies
        self.include_original = include_original
        self.random_state = random_state

    def _learn(self, X):
        self.axis_ = np.linspace(0.0, 1.0, X.shape[1])

    def draw_parameters(self, n_samples: int) -> dict[str, np.ndarray]:
        """Draw ``offset``, ``slope`` and ``scale`` for ``n_samples`` spectra, each shape (n, 1)."""
        check_is_fitted(self)
        rng = self._rng
        return {
            "offset": rng.uniform(-self.offset, self.offset, size=(n_samples, 1)),
            "slope": rng.uniform(1 - self.slope, 1 + self.slope, size=(n_samples, 1)),
            "scale": rng.uniform(1 - self.scale, 1 + self.scale, size=(n_samples, 1)),
        }

    def _perturb(self, X, rng):
        p = self.draw_parameters(X.shape[0])
        baseline = self.std_ * (p["offset"] + (p["slope"] - 1.0) * (self.axis_ - 0.5))
        augmented = p["scale"] * X + baseline
        if self.noise > 0:
            augmented += rng.normal(0.0, self.noise * self.std_, size=X.shape)
        return augmented

    def fit_resample(self, X, y):
        """Fit, then return ``(X_augmented, y_repeated)`` with ``n_copies`` copies of each spectrum."""
        return augmented_copies(X, y, [self.fit(X)], self.n_copies, self.include_original)
