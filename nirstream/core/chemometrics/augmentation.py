"""Spectral data augmentation: random baseline offset, slope, multiplicative scale and noise.

Each augmented spectrum is ``m * x + std_ * (beta + (s - 1) * (a - 0.5)) + noise`` with the
axis ``a`` running from 0 to 1 over the channels and

* ``beta ~ U(-offset, offset)``           (baseline offset, in units of the data's std)
* ``s    ~ U(1 - slope, 1 + slope)``      (baseline slope: the ends move by ``±(s-1)/2`` std)
* ``m    ~ U(1 - scale, 1 + scale)``      (multiplicative scatter / path length)
* ``noise ~ N(0, (noise * std_)**2)``     per channel, off by default

``std_`` is the global standard deviation of the data given to ``fit``, so the same settings
mean the same thing on raw absorbances and on globally scaled spectra.
"""

from __future__ import annotations

import numpy as np
from numbers import Integral, Real

from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted, validate_data


class SpectralAugmenter(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
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

    def __init__(
        self,
        offset: float = 0.1,
        slope: float = 0.05,
        scale: float = 0.1,
        noise: float = 0.0,
        n_copies: int = 100,
        include_original: bool = True,
        random_state=None,
    ):
        self.offset = offset
        self.slope = slope
        self.scale = scale
        self.noise = noise
        self.n_copies = n_copies
        self.include_original = include_original
        self.random_state = random_state

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        X = validate_data(self, X, dtype=np.float64)
        std = float(X.std())
        self.std_ = std if std > 0 else 1.0
        self.axis_ = np.linspace(0.0, 1.0, X.shape[1])
        self._rng = check_random_state(self.random_state)
        return self

    def draw_parameters(self, n_samples: int) -> dict[str, np.ndarray]:
        """Draw ``offset``, ``slope`` and ``scale`` for ``n_samples`` spectra, each shape (n, 1)."""
        check_is_fitted(self)
        rng = self._rng
        return {
            "offset": rng.uniform(-self.offset, self.offset, size=(n_samples, 1)),
            "slope": rng.uniform(1 - self.slope, 1 + self.slope, size=(n_samples, 1)),
            "scale": rng.uniform(1 - self.scale, 1 + self.scale, size=(n_samples, 1)),
        }

    def transform(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        p = self.draw_parameters(X.shape[0])
        baseline = self.std_ * (p["offset"] + (p["slope"] - 1.0) * (self.axis_ - 0.5))
        augmented = p["scale"] * X + baseline
        if self.noise > 0:
            augmented += self._rng.normal(0.0, self.noise * self.std_, size=X.shape)
        return augmented

    def fit_resample(self, X, y):
        """Fit, then return ``(X_augmented, y_repeated)`` with ``n_copies`` copies of each spectrum."""
        self.fit(X)
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y)
        if y.shape[0] != X.shape[0]:
            raise ValueError(f"X has {X.shape[0]} spectra but y has {y.shape[0]} values")
        copies = [self.transform(X) for _ in range(self.n_copies)]
        if self.include_original:
            copies.insert(0, X)
        return np.concatenate(copies), np.concatenate([y] * len(copies))
