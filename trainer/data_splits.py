"""Evaluation protocols: which data trains, which early-stops and calibrates, which tests.

Built-in protocols name the shipped or fetched data sets; ``protocol_from_data`` builds one
from a plant's own file (``DataSource``). The validation split only ever comes from the
training instrument, and the test split is never used to steer training (no early stopping,
LR schedule, LV choice, interval calibration or promotion on it).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from nirstream.core.datasets import SpectralDataset, load_tablets, load_tecator
from nirstream.core.datasets.catalog import NAMED_DATASETS, open_named
from nirstream.core.datasets.jcamp_files import load_jcamp
from nirstream.core.datasets.sample_split import DEFAULT_FRACTIONS, kennard_stone_split
from nirstream.core.datasets.tabular import TABLE_SUFFIXES, DataFileError, load_table
from nirstream.core.chemometrics.resampling import is_regular, on_regular_grid
from nirstream.trainer.small_sets import (MIN_FOR_AUTOMATIC_SPLIT, MIN_TEST, MIN_TRAINING, MIN_VALIDATION,
                                          small_set_reason)

# The paper uses the first 600 channels, 600-1798 nm: the rest is noisy detector edge.
TABLET_RANGE_NM = (600.0, 1798.0)
PROTOCOLS = ("same-instrument", "cross-instrument", "tecator")
DEFAULT_TARGETS = {"same-instrument": "assay", "cross-instrument": "assay", "tecator": "fat"}


@dataclass(frozen=True)
class Protocol:
    """Train / validation / test sets for one experiment, plus optional extra test sets."""

    name: str
    targets: tuple[str, ...]
    train: SpectralDataset
    validation: SpectralDataset
    test: SpectralDataset
    extra_tests: dict[str, SpectralDataset] = field(default_factory=dict)
    window_nm: tuple[float, float] | None = None  # channels the model sees; the rest is cut off
    split_description: str = ""  # where the splits came from, for the report
    gate: SpectralDataset | None = None  # spectra set aside for the promotion gate (default: the validation split)
    small_set: str | None = None  # why there is no hold-out validation (``small_sets``); None: there is one

    @property
    def cross_validated(self) -> bool:
        """Small-set rule: cross-validation on the training split chooses what validation chooses otherwise."""
        return self.small_set is not None

    @property
    def gate_data(self) -> tuple[str, SpectralDataset]:
        """The promotion gate's spectra and their name: a dedicated gate split, else the validation split."""
        return ("gate", self.gate) if self.gate is not None else ("validation", self.validation)

    def model_view(self, dataset: SpectralDataset) -> SpectralDataset:
        """The model's channels of ``dataset`` (a no-op on data already cut to the window)."""
        return dataset.channels(*self.window_nm) if self.window_nm else dataset

    def y(self, dataset: SpectralDataset) -> np.ndarray:
        """The reference values of the protocol's targets, shape (n, k)."""
        return np.column_stack([dataset.target(t) for t in self.targets])

    def unit(self, target: str) -> str:
        return self.train.unit(target)

    @property
    def tests(self) -> dict[str, SpectralDataset]:
        """The main test set under the name ``test`` followed by the extra ones (a plant's file may have none)."""
        return {name: data for name, data in {"test": self.test, **self.extra_tests}.items() if data.n_samples}


def _tablets(instrument: int, full_grid: bool) -> SpectralDataset:
    tablets = load_tablets(instrument)
    return tablets if full_grid else tablets.channels(*TABLET_RANGE_NM)


def load_protocol(name: str, targets: list[str] | str | None = None, full_grid: bool = False) -> Protocol:
    """Build a named protocol: ``same-instrument``, ``cross-instrument`` or ``tecator``.

    * same-instrument: train calibrate_1, validate validate_1, test test_1.
    * cross-instrument: train calibrate_1, validate validate_1, test test_2; calibrate_2 and
      validate_2 come along as extra instrument-2 test sets (never used for training).
    * tecator: train ``train``, validate ``monitor``, test ``test``; target fat by default.

    With ``full_grid`` the tablet sets keep all 650 channels (what analyzers send) and
    ``model_view`` cuts the model's window; otherwise they come already cut.
    """
    if name not in PROTOCOLS:
        raise ValueError(f"unknown protocol {name!r}; choose from {', '.join(PROTOCOLS)}")
    targets = (targets,) if isinstance(targets, str) else tuple(targets or (DEFAULT_TARGETS[name],))
    if name == "tecator":
        data = load_tecator()
        sets = {s: data.split(s) for s in ("train", "monitor", "test")}
        protocol = Protocol(name, targets, sets["train"], sets["monitor"], sets["test"],
                            split_description="the data set's published split: train / monitor (validation) / test")
    else:
        first = _tablets(1, full_grid)
        train, validation = first.split("calibrate"), first.split("validate")
        described = "IDRC 2002: calibrate_1 trains, validate_1 validates"
        if name == "same-instrument":
            protocol = Protocol(name, targets, train, validation, first.split("test"), window_nm=TABLET_RANGE_NM,
                                split_description=f"{described}, test_1 tests")
        else:
            second = _tablets(2, full_grid)
            extra = {"calibrate_2": second.split("calibrate"), "validate_2": second.split("validate")}
            protocol = Protocol(name, targets, train, validation, second.split("test"), extra, window_nm=TABLET_RANGE_NM,
                                split_description=f"{described}, instrument 2's sets test")
    for target in targets:
        protocol.train.target(target)  # fail early on an unknown target name
    return protocol


class DataSource(BaseModel):
    """A plant's own labelled spectra: ``nirstream train --data`` and the ``[data]`` table of a config file."""

    model_config = ConfigDict(extra="forbid")

    path: Path = Field(description="CSV or Parquet (numeric column names are wavelengths in nm), or a folder/zip of JCAMP-DX files")
    targets: list[str] = Field(default_factory=list, description="Reference columns to predict (default: every numeric column)")
    references: Path | None = Field(default=None, description="For JCAMP-DX: CSV/Parquet of reference values by sample id")
    id_column: str | None = Field(default=None, description="Sample id; replicate spectra of one id stay in one split")
    split_column: str | None = Field(default=None, description="Each row's split; without it a Kennard–Stone split is made")
    train: str = Field(default="train", description="Label of training rows in the split column")
    validation: str = Field(default="validation", description="Label of validation rows (early stopping, calibration, gate)")
    test: str = Field(default="test", description="Label of test rows (reported only)")
    gate: str | None = Field(default=None, description="Label of rows set aside for the promotion gate alone "
                                                       "(default: the gate uses the validation rows)")
    units: dict[str, str] = Field(default_factory=dict, description="Target -> unit")
    window_nm: tuple[float, float] | None = Field(default=None, description="Channels the model sees (default: all)")
    split_fractions: tuple[float, float, float] = Field(default=DEFAULT_FRACTIONS,
                                                        description="Train/validation/test shares of the automatic split")

    @field_validator("targets")
    @classmethod
    def _distinct(cls, targets: list[str]) -> list[str]:
        if len(set(targets)) != len(targets):
            raise ValueError(f"targets named twice: {targets}")
        return targets

    def load(self) -> SpectralDataset:
        """The file as a data set (no split made yet), on a regular wavelength grid."""
        data = self._read()
        if is_regular(data.wavelengths):
            return data
        # e.g. JCAMP-DX in wavenumbers: spectrum messages carry a regular grid, so the model gets one
        regular, X = on_regular_grid(data.X, data.wavelengths)
        grid = regular.wavelengths()
        return replace(data, X=X, wavelengths=grid,
                       name=f"{data.name} (irregular axis linearly resampled onto {grid.size} regular channels "
                            f"{grid[0]:g}-{grid[-1]:g} nm)")

    def _read(self) -> SpectralDataset:
        targets = self.targets or None
        if str(self.path) in NAMED_DATASETS:  # a shipped or fetched set, read as if it were the user's file
            data = open_named(str(self.path))
            if self.split_column is None:
                data = replace(data, splits={})
            data = data if targets is None else data.select_targets(targets)
            return replace(data, units=tuple(self.units.get(t, u) for t, u in zip(data.target_names, data.units, strict=True)))
        is_table = self.path.suffix.lower() in TABLE_SUFFIXES
        if is_table:
            if self.references is not None:
                raise DataFileError(f"{self.path.name}: references are only for JCAMP-DX folders; a table holds its own")
            return load_table(self.path, targets, self.split_column, self.id_column, self.units)
        if self.references is None:
            raise DataFileError(f"{self.path}: JCAMP-DX spectra need --references FILE (reference values by sample id)")
        return load_jcamp(self.path, self.references, self.id_column or "sample", targets, self.split_column, self.units)


def protocol_from_data(source: DataSource) -> Protocol:
    """Train / validation / test from the user's split column, or a Kennard–Stone split when there is none; a small
    set (``small_sets``) has no validation split, and the test split is optional."""
    data = source.load()
    if source.split_column:
        rows, described = _rows_by_label(data, source)
        small = small_set_reason(rows["validation"].size, len(set(data.sample_names)), automatic=False)
    else:
        if source.gate is not None:
            raise DataFileError("a gate split needs a split column that labels its rows")
        groups = list(data.sample_names) if source.id_column else None
        n_samples = len(set(groups or range(data.n_samples)))
        if n_samples < MIN_FOR_AUTOMATIC_SPLIT:
            rows = {"train": np.arange(data.n_samples), "validation": np.arange(0), "test": np.arange(0)}
            described = f"{data.name}: no split column; every spectrum trains"
        else:
            rows = kennard_stone_split(data.X, groups, source.split_fractions)
            described = (f"{data.name}: no split column, so a deterministic Kennard–Stone split over principal-component "
                         f"scores, dealt out train/validation/test {'/'.join(f'{f:.0%}' for f in source.split_fractions)} "
                         "so that each spans the spectra")
        if source.id_column:
            described += f"; replicates of one {source.id_column!r} kept together"
        small = small_set_reason(rows["validation"].size, n_samples, automatic=True)
    if small and rows["validation"].size:  # too few to validate on: they train, and cross-validation chooses
        rows = {**rows, "train": np.sort(np.concatenate([rows["train"], rows["validation"]])), "validation": np.arange(0)}
    if small:
        described += f" (small set: {small})"
    minimums = {"train": MIN_TRAINING, **({} if small else {"validation": MIN_VALIDATION}),
                **({"gate": MIN_VALIDATION} if "gate" in rows else {}), **({"test": MIN_TEST} if rows["test"].size else {})}
    for role, minimum in minimums.items():
        if rows[role].size < minimum:
            raise DataFileError(f"{source.path.name}: the {role} split has {rows[role].size} spectra; at least {minimum} needed")
    if source.id_column:
        _refuse_shared_samples(data, rows, source.path.name)
    sets = {role: data.rows(index, name=f"{data.name}[{role}]") for role, index in rows.items()}
    return Protocol(f"data:{source.path.name}", tuple(data.target_names), sets["train"], sets["validation"], sets["test"],
                    window_nm=source.window_nm, split_description=described, gate=sets.get("gate"), small_set=small)


def _rows_by_label(data: SpectralDataset, source: DataSource) -> tuple[dict[str, np.ndarray], str]:
    """The rows of each role by the file's split column: training rows are required; validation and test rows are
    not (without validation rows the small-set rule applies; without test rows nothing is tested)."""
    labels = {"train": source.train, "validation": source.validation, "test": source.test}
    if source.gate is not None:
        labels["gate"] = source.gate
    unused = sorted(set(data.splits) - set(labels.values()))
    # validation and test rows may be absent, but not while rows with another label could be them (a misnamed label)
    missing = {role: label for role, label in labels.items()
               if label not in data.splits and (role in ("train", "gate") or unused)}
    if missing:
        raise DataFileError(f"{source.path.name}: split column {source.split_column!r} has no {missing} rows; "
                            f"its labels are {sorted(data.splits)} (name them with --train/--validation/--test)")
    rows = {role: data.splits.get(label, np.arange(0)) for role, label in labels.items()}
    described = (f"{data.name}: the file's split column {source.split_column!r}: {source.train!r} trains, "
                 f"{source.validation!r} validates, {source.test!r} tests"
                 + (f", {source.gate!r} decides promotion" if source.gate else ""))
    absent = [repr(labels[role]) for role in ("validation", "test") if not rows[role].size]
    if absent:
        described += f" (no {' or '.join(absent)} rows)"
    if unused:
        described += f" (rows labelled {unused} are not used)"
    return rows, described


def _refuse_shared_samples(data: SpectralDataset, rows: dict[str, np.ndarray], source: str) -> None:
    """One sample's replicate spectra in two splits would leak the test set into training."""
    seen: dict[str, str] = {}
    for role, index in rows.items():
        for name in {data.sample_names[i] for i in index}:
            if name in seen and seen[name] != role:
                raise DataFileError(f"{source}: sample {name!r} has spectra in both {seen[name]} and {role}: "
                                    "replicates of one sample must share a split")
            seen[name] = role
