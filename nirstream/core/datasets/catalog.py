"""Open a data set by the name users type on the command line."""

from __future__ import annotations

from pathlib import Path

from nirstream.core.datasets.base import SpectralDataset
from nirstream.core.datasets.tablets import load_tablets
from nirstream.core.datasets.tabular import load_table
from nirstream.core.datasets.tecator import load_tecator

DATASET_HELP = "tablets1 / tablets2 (IDRC 2002, instrument 1 or 2), tecator, or a path to a CSV/Parquet file"


def open_dataset(spec: str, split_column: str | None = None, id_column: str | None = None) -> SpectralDataset:
    """``tablets1``, ``tablets2``, ``tecator`` or a CSV/Parquet path."""
    if spec in ("tablets1", "tablets2"):
        return load_tablets(int(spec[-1]))
    if spec == "tecator":
        return load_tecator()
    if Path(spec).suffix.lower() in {".csv", ".parquet", ".pq", ".txt"}:
        return load_table(spec, split_column=split_column, id_column=id_column)
    raise ValueError(f"unknown data set {spec!r}: use {DATASET_HELP}")
