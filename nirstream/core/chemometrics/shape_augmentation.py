"""Augmentations that EMSC does not undo: what really differs between spectra of one sample on two instruments.

``SpectralAugmenter``'s offset, slope and scale lie inside EMSC's model (reference, 1, a, a²), so EMSC removes them
exactly. These change what EMSC cannot fit:

* ``AxisWarp``            -- wavelength shift and stretch below a channel (x(λ) read at λ·(1 + stretch) + shift);
* ``BandWidth``           -- bands broadened (Gaussian blur) or narrowed (unsharp mask) by a random width;
* ``SmoothBaseline``      -- baselines of higher polynomial order than EMSC's (orthogonal to its polynomial terms);
* ``ChannelGain``         -- multiplicative per-channel noise (detector gain ripple);
* ``InstrumentDifference``-- scaled differences (slave − master) of paired transfer spectra.

Each is a seeded ``RandomAugmentation`` step: ``transform`` perturbs every spectrum once with fresh draws; amplitudes
are relative to the data given to ``fit`` (its global standard deviation, or channel spacing for the warp), so the
same settings mean the same on any instrument. ``ShapeAugmenter`` chains them and makes ``n_copies`` copies of a
training set with ``augmented_copies``, like ``SpectralAugmenter.fit_resample``.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from numpy.polynomial import legendre
from scipy.ndimage import gaussian_filter1d
from sklearn.base import BaseEstimator, clone
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval

from nirstream.core.chemometrics.augmentation import RandomAugmentation, augmented_copies


class AxisWarp(RandomAugmentation):
    """Read each spectrum at ``i·(1 + s) + d`` (channel units, linear interpolation, ends held), ``d ~ U(±shift)``
    channels and ``s ~ U(±stretch)``: the wavelength-axis differences between instruments.

    Parameters
    ----------
    shift : float, default=0.5
        Largest shift in channels (0.5: half a channel, below what an eye sees on a plot).
    stretch : float, default=0.001
        Largest relative stretch of the axis (0.001 moves the far end of 700 channels by 0.7).
    random_state : int, RandomState or None
    """

    _parameter_constraints: dict = {"shift": [Interval(Real, 0, None, closed="left")],
                                    "stretch": [Interval(Real, 0, 0.5, closed="left")], "random_state": ["random_state"]}

    def __init__(self, shift: float = 0.5, stretch: float = 0.001, random_state=None):
        self.shift = shift
        self.stretch = stretch
        self.random_state = random_state

    def _perturb(self, X, rng):
        n, m = X.shape
        channels = np.arange(m, dtype=np.float64)
        centre = (m - 1) / 2.0
        shift = rng.uniform(-self.shift, self.shift, (n, 1))
        stretch = rng.uniform(-self.stretch, self.stretch, (n, 1))
        position = np.clip(centre + (channels - centre) * (1.0 + stretch) + shift, 0.0, m - 1.0)
        left = np.minimum(np.floor(position).astype(np.intp), m - 2)
        weight = position - left
        rows = np.arange(n)[:, None]
        return X[rows, left] * (1.0 - weight) + X[rows, left + 1] * weight


class BandWidth(RandomAugmentation):
    """Broaden or narrow the bands: width ``w ~ U(-width, width)`` channels; ``w > 0`` blurs with a Gaussian of
    standard deviation ``w``; ``w < 0`` sharpens, ``x + (x - blur_|w|(x))``, a first-order deconvolution.

    Parameters
    ----------
    width : float, default=1.0
        Largest Gaussian standard deviation in channels.
    random_state : int, RandomState or None
    """

    _parameter_constraints: dict = {"width": [Interval(Real, 0, None, closed="left")], "random_state": ["random_state"]}

    def __init__(self, width: float = 1.0, random_state=None):
        self.width = width
        self.random_state = random_state

    def _perturb(self, X, rng):
        widths = rng.uniform(-self.width, self.width, X.shape[0])
        out = X.copy()
        for i, w in enumerate(widths):
            if abs(w) < 1e-3:
                continue
            blurred = gaussian_filter1d(X[i], abs(w), mode="nearest")
            out[i] = blurred if w > 0 else 2.0 * X[i] - blurred
        return out


class SmoothBaseline(RandomAugmentation):
    """Add a smooth baseline made only of polynomials of order ``above_order + 1`` to ``above_order + terms`` over the
    channel axis, orthogonalised against the lower orders on the channel grid, each peaking at ±1 with amplitude
    ``~ N(0, amplitude · std)``: curvature EMSC of order ``above_order`` cannot fit.

    Parameters
    ----------
    amplitude : float, default=0.02
        Standard deviation of each term's amplitude, in units of the data's global standard deviation.
    above_order : int, default=2
        EMSC's polynomial order: lower terms are left out (EMSC would remove them anyway).
    terms : int, default=3
    random_state : int, RandomState or None
    """

    _parameter_constraints: dict = {"amplitude": [Interval(Real, 0, None, closed="left")],
                                    "above_order": [Interval(Integral, 0, None, closed="left")],
                                    "terms": [Interval(Integral, 1, None, closed="left")], "random_state": ["random_state"]}

    def __init__(self, amplitude: float = 0.02, above_order: int = 2, terms: int = 3, random_state=None):
        self.amplitude = amplitude
        self.above_order = above_order
        self.terms = terms
        self.random_state = random_state

    def _learn(self, X):
        axis = np.linspace(-1.0, 1.0, X.shape[1])
        top = self.above_order + self.terms
        polynomials = np.stack([legendre.legval(axis, np.eye(top + 1)[order]) for order in range(top + 1)], axis=1)
        # Gram–Schmidt on the channel grid: the higher terms keep nothing EMSC's 1, a, ..., a^order could fit
        orthonormal, _ = np.linalg.qr(polynomials)
        basis = orthonormal[:, self.above_order + 1:].T
        self.basis_ = basis / np.abs(basis).max(axis=1, keepdims=True)  # (terms, channels), each peaking at ±1

    def _perturb(self, X, rng):
        amplitudes = rng.normal(0.0, self.amplitude * self.std_, (X.shape[0], self.terms))
        return X + amplitudes @ self.basis_


class ChannelGain(RandomAugmentation):
    """Multiply every channel by its own ``1 + e``, ``e ~ N(0, sigma)``: gain ripple a scatter model has no term for.

    Parameters
    ----------
    sigma : float, default=0.002
    random_state : int, RandomState or None
    """

    _parameter_constraints: dict = {"sigma": [Interval(Real, 0, 1, closed="left")], "random_state": ["random_state"]}

    def __init__(self, sigma: float = 0.002, random_state=None):
        self.sigma = sigma
        self.random_state = random_state

    def _perturb(self, X, rng):
        return X * (1.0 + rng.normal(0.0, self.sigma, X.shape))


class InstrumentDifference(RandomAugmentation):
    """Add ``c · (slave_k − master_k)`` for a random transfer pair ``k`` and ``c ~ U(0, scale)``: the difference a
    second instrument makes to the same sample, learnt from spectra measured on both.

    Parameters
    ----------
    differences : array of shape (n_pairs, n_channels)
        Slave minus master spectra of the same samples (same grid as the training spectra).
    scale : float, default=1.0
        Largest multiple of a difference added.
    random_state : int, RandomState or None
    """

    _parameter_constraints: dict = {"differences": ["array-like"], "scale": [Interval(Real, 0, None, closed="left")],
                                    "random_state": ["random_state"]}

    def __init__(self, differences=None, scale: float = 1.0, random_state=None):
        self.differences = differences
        self.scale = scale
        self.random_state = random_state

    def _learn(self, X):
        differences = np.atleast_2d(np.asarray(self.differences, dtype=np.float64))
        if differences.shape[1] != X.shape[1]:
            raise ValueError(f"differences have {differences.shape[1]} channels, the spectra {X.shape[1]}")
        if not np.isfinite(differences).all():
            raise ValueError("differences contain NaN or infinity")
        self.differences_ = differences

    def _perturb(self, X, rng):
        picked = rng.randint(0, len(self.differences_), X.shape[0])
        return X + rng.uniform(0.0, self.scale, (X.shape[0], 1)) * self.differences_[picked]


class ShapeAugmenter(BaseEstimator):
    """Chain of augmentations applied in order to every copy; ``fit_resample`` makes ``n_copies`` copies.

    Parameters
    ----------
    steps : list of transformers
        Unfitted augmentations (the classes above, or ``SpectralAugmenter``); each gets its own seed from
        ``random_state``.
    n_copies : int, default=50
    include_original : bool, default=True
    random_state : int, RandomState or None
    """

    _parameter_constraints: dict = {"steps": [list], "n_copies": [Interval(Integral, 0, None, closed="left")],
                                    "include_original": ["boolean"], "random_state": ["random_state"]}

    def __init__(self, steps=None, n_copies: int = 50, include_original: bool = True, random_state=None):
        self.steps = steps
        self.n_copies = n_copies
        self.include_original = include_original
        self.random_state = random_state

    def fit_resample(self, X, y):
        self._validate_params()
        rng = check_random_state(self.random_state)
        chain = [clone(step).set_params(random_state=int(rng.randint(2**31 - 1))).fit(X) for step in self.steps or []]
        return augmented_copies(X, y, chain, self.n_copies, self.include_original)
