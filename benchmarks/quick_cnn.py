"""What the ablation benchmarks share: fit the CNN ``nirstream train`` would fit and predict validation and tests."""

from __future__ import annotations

import numpy as np

from nirstream.trainer.cnn import NetworkCollapsed
from nirstream.trainer.regressor_building import cnn_regressor


def fit_and_predict(settings, protocol, tests: dict) -> tuple[np.ndarray, dict[str, np.ndarray], bool]:
    """(validation predictions, {test name: predictions}, collapsed); a network whose every seed collapsed counts as
    the mean predictor (that is what the trainer's guard stops it from being)."""
    regressor = cnn_regressor(settings, protocol.train.n_samples, protocol.train.wavelengths, protocol.window_nm, 0)
    k = len(protocol.targets)
    try:
        regressor.fit(protocol.train.X, protocol.y(protocol.train), X_val=protocol.validation.X,
                      y_val=protocol.y(protocol.validation))
    except NetworkCollapsed:
        mean = protocol.y(protocol.train).mean(axis=0)
        return (np.tile(mean, (protocol.validation.n_samples, 1)), {n: np.tile(mean, (d.n_samples, 1)) for n, d in tests.items()},
                True)
    return (np.reshape(regressor.predict(protocol.validation.X), (-1, k)),
            {n: np.reshape(regressor.predict(d.X), (-1, k)) for n, d in tests.items()}, False)
