"""What ``nirstream train`` does: its settings (one definition, also the config file's schema) and its data.

Kept apart from the training itself so that reading and checking options imports no TensorFlow: a
mistake in a config file is reported in a second, not after the framework has loaded.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from nirstream.core.settings import SharedSettings
from nirstream.trainer.intervals import DEFAULT_COVERAGE
from nirstream.trainer.data_splits import DataSource, Protocol, load_protocol, protocol_from_data

log = logging.getLogger(__name__)

QUICK_SAMPLES_PER_EPOCH = 1000
QUICK_SPECTRA_SEEN = 30_000  # the quick fit's budget of augmented spectra, whatever the training set's size


class TrainSettings(BaseModel):
    """What ``nirstream train`` does; defaults reproduce the paper's setup on the tablets. Unknown keys are refused."""

    model_config = ConfigDict(extra="forbid")

    protocol: str = Field(default="cross-instrument", description="Built-in data: same-instrument, cross-instrument or tecator")
    targets: list[str] = Field(default_factory=list, description="Built-in data's targets (default assay / fat)")
    data: DataSource | None = Field(default=None, description="A plant's own file instead of a built-in protocol")
    variant: str = "augment+emsc"
    centring: str = Field(default="spectrum", pattern="^(spectrum|global)$",
                          description="CNN input: subtract the mean training spectrum (sample differences at unit size) "
                                      "or one global mean (the paper's scaling)")
    seed: int = 0
    epochs: int | None = None
    n_copies: int | None = None
    ensemble_size: int | None = Field(default=None, ge=1, description="CNN seed-ensemble members (default: CNNRegressor's, 3)")
    quick: bool = Field(default=False, description="Demo-sized CNN, one member, ~1,000 spectra per epoch: seconds, for demos and tests")
    coverage: float = Field(default=DEFAULT_COVERAGE, gt=0, lt=1, description="Prediction intervals' coverage")
    calibration: str = Field(default="auto", pattern="^(auto|validation|cross-validation)$",
                             description="Intervals calibrated on the validation residuals, or on 5-fold out-of-fold "
                                         "residuals of the training split (5 refits); auto: validation, unless the "
                                         "validation targets spread less than half as much as the training targets")
    registry: Path = Field(default_factory=lambda: SharedSettings.load().registry, description="Default: NIRSTREAM_REGISTRY")
    report_dir: Path = Path("artifacts")
    promote_margin: float = Field(default=0.0, ge=0, lt=1, description="Relative RMSEP improvement needed")
    search_budget: str | None = Field(default=None, description="Search the CNN's hyper-parameters on the validation "
                                      "split for this long (e.g. 10m; Optuna). Default: the paper's configuration")
    pls: bool = Field(default=True, description="Fit PLS per target: the baseline, and a family that can be deployed")
    family: str = Field(default="auto", pattern="^(auto|cnn|pls)$",
                        description="Model family to deploy: auto (lower validation RMSEP), cnn or pls")
    bootstrap_servers: str | None = None
    by: str | None = Field(default=None, description="Who trains, for the registry's audit trail (default "
                                                     "NIRSTREAM_USER, else user@host)")
    models_topic: str = Field(default_factory=lambda: SharedSettings.load().topics.models,
                              description="Default: NIRSTREAM_TOPICS__MODELS")
    extra_training: Path | None = Field(default=None, description="CSV/Parquet of labelled plant spectra added to training (every row)")
    augmentation_strength: float = Field(default=1.0, ge=0, description="Multiplies every augmentation's size (0: the "
                                         "augmented copies are identical; the training budget stays the same)")
    instrument_pairs: tuple[Path, Path] | None = Field(
        default=None, description="Master and slave CSV/Parquet of the same samples (matched by a 'sample' column): the "
                                  "shape variants add scaled slave - master differences to training spectra")

    @model_validator(mode="after")
    def _targets_in_one_place(self) -> TrainSettings:
        if self.data is not None and self.targets:
            raise ValueError("with data, name the targets in data.targets (--target goes there on the command line)")
        if self.family == "pls" and not self.pls:
            raise ValueError("family pls needs PLS (drop --no-pls)")
        if self.search_budget is not None:
            from nirstream.trainer.search import parse_budget

            parse_budget(self.search_budget)  # refuse a malformed budget before any data is read
        return self

    def regressor_factory(self, wavelengths, window_nm: tuple[float, float] | None, verbose: int | str = 0):
        """``make(n_copies, augmentation_strength, **cnn_params)`` -> an unfitted ``CNNRegressor`` of this run's variant
        (the fixed configurations and every search trial are built here)."""
        from nirstream.trainer.cnn import CNNRegressor
        from nirstream.trainer.variants import variant_steps

        differences = self._instrument_differences()  # read once, not per search trial

        def make(n_copies: int, augmentation_strength: float = 1.0, **params):
            preprocessor, augmenter = variant_steps(self.variant, wavelengths, window_nm, n_copies,
                                                    augmentation_strength=augmentation_strength, centring=self.centring,
                                                    instrument_differences=differences)
            return CNNRegressor(preprocessor, augmenter, verbose=verbose, **params)

        return make

    def _instrument_differences(self) -> np.ndarray | None:
        """Slave minus master spectra of the paired samples (``instrument_pairs``), for the shape augmentation."""
        if self.instrument_pairs is None:
            return None
        from nirstream.core.datasets import load_table
        from nirstream.trainer.transfer_fit import paired_standards

        master, slave = (load_table(path, id_column="sample", spectra_only=True) for path in self.instrument_pairs)
        _, X_master, X_slave = paired_standards(master, slave)
        return X_slave - X_master

    def load_protocol(self) -> Protocol:
        """Train / validation / test of the user's file or the built-in protocol, plus any extra training rows."""
        protocol = protocol_from_data(self.data) if self.data else load_protocol(self.protocol, self.targets, full_grid=True)
        return _with_extra_training(protocol, self.extra_training) if self.extra_training else protocol

    def cnn_regressor(self, n_train: int, wavelengths=None, window_nm: tuple[float, float] | None = None,
                      verbose: int | str = 0):
        """The (unfitted) ``CNNRegressor`` ``train`` fits on ``n_train`` spectra of grid ``wavelengths``."""
        n_copies, params = 50, {}  # CNNRegressor's defaults otherwise: the measured winners on the tablets
        if self.quick:
            # A demo-sized network (~4x fewer weights than the paper's, ~6x less compute) and a fixed budget:
            # about QUICK_SAMPLES_PER_EPOCH augmented spectra per epoch and QUICK_SPECTRA_SEEN in all (so a retrain
            # on 1,500 stream spectra runs 20 epochs, not 30 longer ones): seconds on 2 cores, first model or retrain.
            n_copies = max(1, round(QUICK_SAMPLES_PER_EPOCH / max(n_train, 1)))
            epochs = int(np.clip(round(QUICK_SPECTRA_SEEN / (n_copies * max(n_train, 1))), 10, 30))
            params = {"filters": (4, 8), "kernel_size": 16, "dense_units": 32, "epochs": epochs,
                      "early_stopping_start": epochs, "ensemble_size": 1}
        n_copies = self.n_copies if self.n_copies is not None else n_copies
        params |= {k: v for k, v in (("epochs", self.epochs), ("ensemble_size", self.ensemble_size)) if v is not None}
        return self.regressor_factory(wavelengths, window_nm, verbose)(n_copies, self.augmentation_strength,
                                                                       random_state=self.seed, **params)


def _with_extra_training(protocol: Protocol, path: Path) -> Protocol:
    """Append labelled plant spectra (same grid, the protocol's targets) to the training set."""
    from nirstream.core.datasets import load_table

    train = protocol.train
    extra = load_table(path, target_columns=list(protocol.targets))
    if extra.wavelengths.shape != train.wavelengths.shape or not np.allclose(extra.wavelengths, train.wavelengths, atol=0.01):
        raise ValueError(f"{path}: wavelength grid differs from the training data")
    combined = replace(
        train,
        X=np.vstack([train.X, extra.X]),
        y=np.vstack([protocol.y(train), protocol.y(extra)]),
        target_names=protocol.targets,
        units=tuple(protocol.unit(t) for t in protocol.targets),
        sample_names=train.sample_names + extra.sample_names,
    )
    log.info("training on %d spectra (%d added from %s)", combined.n_samples, extra.n_samples, path)
    return replace(protocol, train=combined)


