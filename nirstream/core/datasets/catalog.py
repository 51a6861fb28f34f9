"""Open a data set by the name users type on the command line."""

from __future__ import annotations

from pathlib import Path

from nirstream.core.datasets.base import SpectralDataset
from nirstream.core.datasets.corn import CORN_FILE, CORN_INSTRUMENTS, load_corn
from nirstream.core.datasets.fetched import FetchedFile
from nirstream.core.datasets.tablets import TABLETS_FILE, load_tablets
from nirstream.core.datasets.tabular import load_table
from nirstream.core.datasets.tecator import load_tecator

NAMED_DATASETS = ("tablets1", "tablets2", "tecator", *(f"corn-{i}" for i in CORN_INSTRUMENTS))
FETCHED_FILES: tuple[FetchedFile, ...] = (TABLETS_FILE, CORN_FILE)  # what `nirstream data fetch` gets
DATASET_HELP = ("tablets1 / tablets2 (IDRC 2002, instrument 1 or 2), tecator, corn-m5 / corn-mp5 / corn-mp6 "
                "(Eigenvector corn, three instruments), or a path to a CSV/Parquet file")


def open_named(name: str) -> SpectralDataset:
    """A shipped or fetched data set by name."""
    if name in ("tablets1", "tablets2"):
        return load_tablets(int(name[-1]))
    if name == "tecator":
        return load_tecator()
    if name.startswith("corn-") and name[5:] in CORN_INSTRUMENTS:
        return load_corn(name[5:])
    raise ValueError(f"unknown data set {name!r}: use {DATASET_HELP}")


def open_dataset(spec: str, split_column: str | None = None, id_column: str | None = None) -> SpectralDataset:
    """A named data set or a CSV/Parquet path."""
    if spec in NAMED_DATASETS:
        return open_named(spec)
    if Path(spec).suffix.lower() in {".csv", ".parquet", ".pq", ".txt"}:
        return load_table(spec, split_column=split_column, id_column=id_column)
    raise ValueError(f"unknown data set {spec!r}: use {DATASET_HELP}")
