"""The paper's four preprocessing variants, shared by PLS and CNN.

``none``, ``emsc``, ``augment`` and ``augment+emsc``. Augmentation enlarges the training set
only; EMSC is a fitted transformer applied to every set, its reference being the mean of
the *original* training spectra (augmented copies must not shift the reference).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.base import TransformerMixin
from sklearn.preprocessing import FunctionTransformer

from nirstream.core.augmentation import SpectralAugmenter
from nirstream.core.preprocessing import EMSC

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


def fit_corrector(variant: str, X_train: np.ndarray) -> TransformerMixin:
    """A fitted EMSC (reference = mean training spectrum) or an identity transformer."""
    X_train = np.asarray(X_train, dtype=np.float64)
    if Variant.parse(variant).emsc:
        return EMSC(order=EMSC_ORDER, reference=X_train.mean(axis=0)).fit(X_train)
    return FunctionTransformer(validate=False).fit(X_train)


def prepare_training(
    variant: str,
    X_train: np.ndarray,
    y_train: np.ndarray,
    n_copies: int = 100,
    random_state=None,
    augmenter_params: dict | None = None,
) -> tuple[np.ndarray, np.ndarray, TransformerMixin]:
    """Augment (if asked) then correct the training set; return ``(X, y, corrector)``.

    Apply ``corrector.transform`` to validation and test spectra; they are never augmented.
    """
    X_train = np.asarray(X_train, dtype=np.float64)
    y_train = np.asarray(y_train, dtype=np.float64)
    corrector = fit_corrector(variant, X_train)
    if Variant.parse(variant).augment:
        augmenter = SpectralAugmenter(n_copies=n_copies, random_state=random_state, **(augmenter_params or {}))
        X_train, y_train = augmenter.fit_resample(X_train, y_train)
    return corrector.transform(X_train), y_train, corrector
