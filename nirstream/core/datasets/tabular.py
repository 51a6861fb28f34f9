"""A user's own spectra from CSV or Parquet: one row per spectrum.

Columns whose name is a number are channels (the number is the wavelength in nm); the
others are reference values (numeric) or labels such as a sample id or a split name.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from nirstream.core.datasets.base import SpectralDataset


def _as_wavelength(column: object) -> float | None:
    try:
        return float(str(column))
    except ValueError:
        return None


def _read(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise FileNotFoundError(f"no such data file: {path}")
    if path.suffix.lower() in {".parquet", ".pq"}:
        return pd.read_parquet(path)
    if path.suffix.lower() in {".csv", ".txt"}:
        return pd.read_csv(path)
    raise ValueError(f"{path.name}: expected a .csv or .parquet file")


def _numeric_block(frame: pd.DataFrame, what: str) -> np.ndarray:
    bad_columns = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    if bad_columns:
        raise ValueError(f"{what} must be numeric; non-numeric values in column(s) {bad_columns[:5]}")
    values = np.ascontiguousarray(frame.to_numpy(dtype=np.float64))
    if not np.isfinite(values).all():
        rows = np.flatnonzero(~np.isfinite(values).all(axis=1))
        raise ValueError(f"{what} contain NaN or infinite values in row(s) {rows[:10].tolist()}")
    return values


def load_table(
    path: str | Path,
    target_columns: list[str] | None = None,
    split_column: str | None = None,
    id_column: str | None = None,
    units: dict[str, str] | None = None,
    name: str | None = None,
) -> SpectralDataset:
    """Load spectra and reference values from a CSV or Parquet file.

    Parameters
    ----------
    target_columns : reference columns to keep; all numeric non-channel columns when None.
    split_column : column naming each row's split (e.g. train/test); becomes ``splits``.
    id_column : column with sample names; row numbers when None.
    units : target name -> unit, for reports and predictions.
    """
    path = Path(path)
    frame = _read(path)
    wavelengths = {c: _as_wavelength(c) for c in frame.columns}
    channel_columns = [c for c, wl in wavelengths.items() if wl is not None]
    if len(channel_columns) < 2:
        raise ValueError(f"{path.name}: found {len(channel_columns)} wavelength columns (column names must be numbers)")
    label_columns = {split_column, id_column} - {None}
    if target_columns is None:
        target_columns = [
            c
            for c in frame.columns
            if wavelengths[c] is None and c not in label_columns and pd.api.types.is_numeric_dtype(frame[c])
        ]
    missing = [c for c in [*target_columns, *label_columns] if c not in frame.columns]
    if missing:
        raise KeyError(f"{path.name}: missing column(s) {missing}")

    grid = np.array([wavelengths[c] for c in channel_columns])
    if np.any(np.diff(grid) <= 0):
        raise ValueError(f"{path.name}: wavelength columns must be in increasing order")
    splits = {}
    if split_column is not None:
        labels = frame[split_column].astype(str).to_numpy()
        splits = {s: np.flatnonzero(labels == s) for s in dict.fromkeys(labels)}
    names = frame[id_column].astype(str) if id_column else pd.Series(range(len(frame))).astype(str)
    units = units or {}
    return SpectralDataset(
        name=name or path.stem,
        X=_numeric_block(frame[channel_columns], "spectra"),
        y=_numeric_block(frame[target_columns], "reference values"),
        wavelengths=grid,
        target_names=tuple(target_columns),
        units=tuple(units.get(t, "") for t in target_columns),
        sample_names=tuple(names),
        splits=splits,
    )
