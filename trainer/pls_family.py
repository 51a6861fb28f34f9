"""PLS as a deployable model family: the same preprocessing object as the CNN, one PLS per target.

The number of latent variables per target comes from cross-validation on the training split
(``compare_pls``); the deployed model is refitted on the whole training split with those counts and
collapsed to a ``LinearModel`` (weights and bias), which a bundle stores as arrays and the worker
serves with a matrix product.
"""

from __future__ import annotations

import numpy as np
from sklearn.cross_decomposition import PLSRegression

from nirstream.core.chemometrics.linear_model import LinearModel
from nirstream.core.chemometrics.spectral_preprocessor import SpectralPreprocessor
from nirstream.trainer.data_splits import Protocol
from nirstream.trainer.variants import variant_steps

PLS_COPIES = 10  # augmented copies per spectrum for PLS, as in its cross-validation (compare_pls)


def fit_deployable_pls(protocol: Protocol, variant: str, latent_variables: dict[str, int],
                       random_state: int = 0) -> tuple[LinearModel, SpectralPreprocessor]:
    """One PLS per target (its own LV count) on the protocol's whole training spectra, and the fitted preprocessor."""
    X, Y = protocol.train.X, protocol.y(protocol.train)
    preprocessor, augmenter = variant_steps(variant, protocol.train.wavelengths, protocol.window_nm, PLS_COPIES,
                                            random_state=random_state)
    preprocessor.fit(X)  # on the original spectra: EMSC's reference and the input screen
    if augmenter is not None:
        X, Y = augmenter.fit_resample(X, Y)
    features = preprocessor.transform(X)
    # a cross-validation fold's refit of a small set may have fewer rows than the LVs chosen on all of them
    most = min(features.shape)
    models = [PLSRegression(n_components=min(int(latent_variables[target]), most), scale=False).fit(features, Y[:, j])
              for j, target in enumerate(protocol.targets)]
    return LinearModel.from_pls(models), preprocessor


def predict_linear(model: LinearModel, preprocessor: SpectralPreprocessor, X: np.ndarray) -> np.ndarray:
    return model.predict(preprocessor.transform(np.asarray(X, dtype=np.float64)))
