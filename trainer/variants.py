"""Preprocessing variants, shared by PLS and CNN.

The paper's four (``none``, ``emsc``, ``augment``, ``augment+emsc``), the augmentations EMSC does not undo
(``shape``, ``shape+emsc``: wavelength warp, band width, higher-order baselines, channel gain; see
``nirstream.core.chemometrics.shape_augmentation``), and the PLS pretreatments a chemometrician tries (``snv``, ``sg1``,
``sg1+snv``, ``sg2+snv``: Savitzky–Golay 1st/2nd derivative, standard normal variate). A variant is a
``SpectralPreprocessor`` (window -> derivative -> SNV -> EMSC -> scaling; EMSC's reference is the mean of the
*original* training spectra) plus, for ``augment``/``shape``, an augmenter that enlarges the training set only.

``augment`` draws offset, slope and scale: exactly what EMSC models, so ``augment+emsc`` trains on copies EMSC makes
identical again (only the network's input noise differs). Use it without EMSC, or ``shape+emsc``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nirstream.core.chemometrics.augmentation import SpectralAugmenter
from nirstream.core.chemometrics.shape_augmentation import (AxisWarp, BandWidth, ChannelGain, InstrumentDifference, ShapeAugmenter,
                                               SmoothBaseline)
from nirstream.core.chemometrics.spectral_preprocessor import SpectralPreprocessor

VARIANTS = ("none", "emsc", "augment", "augment+emsc", "shape", "shape+emsc")
PLS_VARIANTS = ("none", "emsc", "snv", "sg1", "sg1+snv", "sg2+snv")
EMSC_ORDER = 2


@dataclass(frozen=True)
class Variant:
    augment: bool
    emsc: bool
    snv: bool = False
    derivative: int | None = None
    shape: bool = False

    @classmethod
    def parse(cls, name: str) -> Variant:
        if name not in VARIANTS + PLS_VARIANTS:
            raise ValueError(f"unknown variant {name!r}; choose from {', '.join(dict.fromkeys(VARIANTS + PLS_VARIANTS))}")
        parts = set(name.split("+"))
        derivative = 1 if "sg1" in parts else 2 if "sg2" in parts else None
        return cls(augment="augment" in parts, emsc="emsc" in parts, snv="snv" in parts, derivative=derivative,
                   shape="shape" in parts)


def shape_steps(strength: float = 1.0, instrument_differences: np.ndarray | None = None) -> list:
    """The augmentations EMSC does not undo, at ``strength`` times their defaults (0: none), and scaled differences
    between paired instruments when transfer spectra are given."""
    steps = [AxisWarp(shift=0.5 * strength, stretch=0.001 * strength), BandWidth(width=1.0 * strength),
             SmoothBaseline(amplitude=0.02 * strength, above_order=EMSC_ORDER), ChannelGain(sigma=0.002 * strength)]
    if instrument_differences is not None:
        steps.append(InstrumentDifference(instrument_differences, scale=1.0))
    return steps


def variant_steps(variant: str, wavelengths=None, window_nm: tuple[float, float] | None = None, n_copies: int = 50,
                  random_state=None, augmentation_strength: float = 1.0, centring: str = "spectrum",
                  instrument_differences: np.ndarray | None = None):
    """The variant's (unfitted) preprocessor and augmenter (None without augmentation)."""
    parsed = Variant.parse(variant)
    first_nm, last_nm = window_nm or (None, None)
    preprocessor = SpectralPreprocessor(wavelengths, first_nm, last_nm, emsc_order=EMSC_ORDER if parsed.emsc else None,
                                        derivative=parsed.derivative, snv=parsed.snv, centring=centring)
    augmenter = None
    if parsed.augment:
        s = augmentation_strength
        augmenter = SpectralAugmenter(offset=0.1 * s, slope=0.05 * s, scale=0.1 * s, n_copies=n_copies, random_state=random_state)
    elif parsed.shape:
        augmenter = ShapeAugmenter(shape_steps(augmentation_strength, instrument_differences), n_copies=n_copies,
                                   random_state=random_state)
    return preprocessor, augmenter


def prepare_training(variant: str, X_train: np.ndarray, y_train: np.ndarray, n_copies: int = 100, random_state=None,
                     augmentation_strength: float = 1.0) -> tuple[np.ndarray, np.ndarray, SpectralPreprocessor]:
    """Fit the variant's preprocessor on the original spectra, augment (if asked), preprocess; return
    ``(features, y, fitted preprocessor)``. Apply ``preprocessor.transform`` to validation and test spectra;
    they are never augmented."""
    X_train = np.asarray(X_train, dtype=np.float64)
    y_train = np.asarray(y_train, dtype=np.float64)
    preprocessor, augmenter = variant_steps(variant, n_copies=n_copies, random_state=random_state,
                                            augmentation_strength=augmentation_strength)
    preprocessor.fit(X_train)
    if augmenter is not None:
        X_train, y_train = augmenter.fit_resample(X_train, y_train)
    return preprocessor.transform(X_train), y_train, preprocessor
