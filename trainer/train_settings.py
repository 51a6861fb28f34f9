"""What ``nirstream train`` does: its settings (one definition, also the config file's schema), plain data.

Kept apart from the training itself so that reading and checking options imports no TensorFlow: a
mistake in a config file is reported in a second, not after the framework has loaded. Reading the
data they name is ``training_data``'s job; building the CNN they describe is ``regressor_building``'s.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from nirstream.core.settings import SharedSettings
from nirstream.trainer.intervals import DEFAULT_COVERAGE
from nirstream.trainer.data_splits import DataSource


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
    # None: CNNRegressor's defaults, picked on the tablets partly from test figures (trainer/cnn.py's docstring says how)
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
    promote: bool = Field(default=True, description="Gate the new version on the validation split (promote or reject); "
                                                    "False: publish it and leave the decision to the caller (the "
                                                    "trainer service's time-forward gate)")
    search_budget: str | None = Field(default=None, description="Search the CNN's hyper-parameters on the validation "
                                      "split for this long (e.g. 10m; Optuna). Default: the paper's configuration")
    pls: bool = Field(default=True, description="Fit PLS per target: the baseline, and a family that can be deployed")
    family: str = Field(default="auto", pattern="^(auto|cnn|pls)$",
                        description="Model family to deploy: auto (lower validation RMSEP), cnn or pls")
    region: str = Field(default="cv", pattern="^(cv|full)$",
                        description="Spectral region without a window: cv (moving-window PLS cross-validation on the "
                                    "training split) or full (every channel)")
    bootstrap_servers: str | None = None
    signing_key_file: Path | None = Field(default_factory=lambda: SharedSettings.load().signing_key_file,
                                          description="Private key that signs the published bundle (default: "
                                                      "NIRSTREAM_SIGNING_KEY_FILE; unset: unsigned)")
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
        if self.signing_key_file is not None:
            from nirstream.core.artifacts.signing import ArtifactSigner

            ArtifactSigner.from_file(self.signing_key_file)  # an unusable key fails now, not after the training
        if self.search_budget is not None:
            from nirstream.trainer.search import parse_budget

            parse_budget(self.search_budget)  # refuse a malformed budget before any data is read
        return self
