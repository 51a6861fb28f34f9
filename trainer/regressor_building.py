"""The unfitted ``CNNRegressor`` a ``nirstream train`` run fits: its fixed configuration (full or quick) and the
factory every search trial is built with, both of the run's variant."""

from __future__ import annotations

import numpy as np

from nirstream.trainer.train_settings import TrainSettings

QUICK_SAMPLES_PER_EPOCH = 1000
QUICK_SPECTRA_SEEN = 30_000  # the quick fit's budget of augmented spectra, whatever the training set's size


def regressor_factory(settings: TrainSettings, wavelengths, window_nm: tuple[float, float] | None, verbose: int | str = 0):
    """``make(n_copies, augmentation_strength, **cnn_params)`` -> an unfitted ``CNNRegressor`` of this run's variant
    (the fixed configurations and every search trial are built here)."""
    from nirstream.trainer.cnn import CNNRegressor
    from nirstream.trainer.variants import variant_steps

    differences = instrument_differences(settings)  # read once, not per search trial

    def make(n_copies: int, augmentation_strength: float = 1.0, **params):
        preprocessor, augmenter = variant_steps(settings.variant, wavelengths, window_nm, n_copies,
                                                augmentation_strength=augmentation_strength, centring=settings.centring,
                                                instrument_differences=differences)
        return CNNRegressor(preprocessor, augmenter, verbose=verbose, **params)

    return make


def instrument_differences(settings: TrainSettings) -> np.ndarray | None:
    """Slave minus master spectra of the paired samples (``instrument_pairs``), for the shape augmentation."""
    if settings.instrument_pairs is None:
        return None
    from nirstream.core.datasets import load_table
    from nirstream.trainer.transfer_fit import paired_standards

    master, slave = (load_table(path, id_column="sample", spectra_only=True) for path in settings.instrument_pairs)
    _, X_master, X_slave = paired_standards(master, slave)
    return X_slave - X_master


def cnn_regressor(settings: TrainSettings, n_train: int, wavelengths=None, window_nm: tuple[float, float] | None = None,
                  verbose: int | str = 0):
    """The (unfitted) ``CNNRegressor`` ``train`` fits on ``n_train`` spectra of grid ``wavelengths``."""
    n_copies, params = 50, {}  # CNNRegressor's defaults otherwise (how they were chosen: trainer/cnn.py's docstring)
    if settings.quick:
        # A demo-sized network (~4x fewer weights than the paper's, ~6x less compute) and a fixed budget:
        # about QUICK_SAMPLES_PER_EPOCH augmented spectra per epoch and QUICK_SPECTRA_SEEN in all (so a retrain
        # on 1,500 stream spectra runs 20 epochs, not 30 longer ones): seconds on 2 cores, first model or retrain.
        n_copies = max(1, round(QUICK_SAMPLES_PER_EPOCH / max(n_train, 1)))
        epochs = int(np.clip(round(QUICK_SPECTRA_SEEN / (n_copies * max(n_train, 1))), 10, 30))
        params = {"filters": (4, 8), "kernel_size": 16, "dense_units": 32, "epochs": epochs,
                  "early_stopping_start": epochs, "ensemble_size": 1}
    n_copies = settings.n_copies if settings.n_copies is not None else n_copies
    params |= {k: v for k, v in (("epochs", settings.epochs), ("ensemble_size", settings.ensemble_size)) if v is not None}
    return regressor_factory(settings, wavelengths, window_nm, verbose)(n_copies, settings.augmentation_strength,
                                                                        random_state=settings.seed, **params)
