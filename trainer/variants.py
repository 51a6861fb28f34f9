"""The paper's four preprocessing variants, shared by PLS and CNN.

``none``, ``emsc``, ``augment`` and ``augment+emsc``. A variant is a ``SpectralPreprocessor``
(window -> EMSC or not -> global scaling; EMSC's reference is the mean of the *original* training
spectra) plus, for ``augment``, a ``SpectralAugmenter`` that enlarges the training set only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nirstream.core.augmentation import SpectralAugmenter
from nirstream.core.spectral_preprocessor import SpectralPreprocessor

VARIANTS = ("none", "emsc", "augment", "augment+emsc")
EMSC_ORDER = 2


@dataclass(frozen=True)
class Variant:
    augment: bool
    emsc: bool

    @classmethod
    def parse(cls, name: str) -> Variant:
        if name not in VARIANTS:
            raise ValueError(f"unknown variant {name!r}; choose from {', '.join(VARIANTS)}")
        return cls(augment="augment" in name, emsc="emsc" in name)


def variant_steps(variant: str, wavelengths=None, window_nm: tuple[float, float] | None = None, n_copies: int = 50,
                  random_state=None, augmenter_params: dict | None = None) -> tuple[SpectralPreprocessor, SpectralAugmenter | None]:
    """The variant's (unfitted) preprocessor and augmenter (None without augmentation)."""
    parsed = Variant.parse(variant)
    first_nm, last_nm = window_nm or (None, None)
    preprocessor = SpectralPreprocessor(wavelengths, first_nm, last_nm, emsc_order=EMSC_ORDER if parsed.emsc else None)
    augmenter = None
    if parsed.augment:
        augmenter = SpectralAugmenter(n_copies=n_copies, random_state=random_state, **(augmenter_params or {}))
    return preprocessor, augmenter


def prepare_training(variant: str, X_train: np.ndarray, y_train: np.ndarray, n_copies: int = 100, random_state=None,
                     augmenter_params: dict | None = None) -> tuple[np.ndarray, np.ndarray, SpectralPreprocessor]:
    """Fit the variant's preprocessor on the original spectra, augment (if asked), preprocess; return
    ``(features, y, fitted preprocessor)``. Apply ``preprocessor.transform`` to validation and test spectra;
    they are never augmented."""
    X_train = np.asarray(X_train, dtype=np.float64)
    y_train = np.asarray(y_train, dtype=np.float64)
    preprocessor, augmenter = variant_steps(variant, n_copies=n_copies, random_state=random_state,
                                            augmenter_params=augmenter_params)
    preprocessor.fit(X_train)
    if augmenter is not None:
        X_train, y_train = augmenter.fit_resample(X_train, y_train)
    return preprocessor.transform(X_train), y_train, preprocessor
