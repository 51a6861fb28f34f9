"""A user's own spectra from CSV or Parquet: one row per spectrum.

Columns whose name is a number are channels (the number is the wavelength in nm); the
others are reference values (numeric) or labels such as a sample id or a split name.
Every mistake a user can make in such a file is refused with a message that names the
column and the rows (numbered from 1, the first row after the header).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pandas is imported where a table is read or written: declaring commands needs none of it
    import pandas as pd

from nirstream.core.datasets.base import SpectralDataset

TABLE_SUFFIXES = {".csv", ".txt", ".parquet", ".pq"}


class DataFileError(ValueError):
    """A data file that cannot be used as it is, with what to fix."""


def _as_wavelength(column: object) -> float | None:
    try:
        value = float(str(column))
    except ValueError:
        return None
    return value if np.isfinite(value) else None


def read_frame(path: Path) -> pd.DataFrame:
    import pandas as pd

    if not path.exists():
        raise FileNotFoundError(f"no such data file: {path}")
    if path.suffix.lower() in {".parquet", ".pq"}:
        return pd.read_parquet(path)
    if path.suffix.lower() in {".csv", ".txt"}:
        return pd.read_csv(path)
    raise DataFileError(f"{path.name}: expected a .csv or .parquet file")


def one_line(text: str, limit: int) -> str:
    """``text`` on one printable line (newlines, control characters and undecodable bytes escaped), cut to
    ``limit`` characters: file names and error details go into logs and reason files, where they must not
    forge a line."""
    text = text if text.isprintable() else repr(text)[1:-1]
    return text if len(text) <= limit else text[: limit - 1] + "…"


def snippet(value: object, limit: int = 40) -> str:
    """A file's content quoted in an error message, escaped and short: error texts land in logs and reason
    files other people read; they show what was wrong, not the file."""
    return one_line(repr(str(value)), limit)


def row_numbers(mask: np.ndarray, limit: int = 10) -> str:
    rows = (np.flatnonzero(mask) + 1).tolist()
    return ", ".join(map(str, rows[:limit])) + (f" and {len(rows) - limit} more" if len(rows) > limit else "")


def _numeric_block(frame: pd.DataFrame, what: str, source: str) -> np.ndarray:
    """The columns as a float array; non-numeric, missing or infinite values refused by column and row."""
    import pandas as pd

    for column in frame.columns:
        values = frame[column]
        if not pd.api.types.is_numeric_dtype(values):
            converted = pd.to_numeric(values, errors="coerce")
            bad = converted.isna().to_numpy() & values.notna().to_numpy()
            if bad.any():
                example = values[bad].iloc[0]
                raise DataFileError(f"{source}: {what} column {column!r} is not numeric: {example!r} in row(s) {row_numbers(bad)}")
    values = np.ascontiguousarray(frame.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64))
    finite = np.isfinite(values)
    if not finite.all():
        columns = [str(c) for c, ok in zip(frame.columns, finite.all(axis=0), strict=True) if not ok]
        raise DataFileError(f"{source}: {what} missing (NaN) or infinite in row(s) {row_numbers(~finite.all(axis=1))} "
                            f"(column(s) {', '.join(columns[:5])}{' ...' if len(columns) > 5 else ''})")
    return values


def _check_grid(grid: np.ndarray, source: str) -> None:
    values, counts = np.unique(grid, return_counts=True)
    if (counts > 1).any():
        raise DataFileError(f"{source}: duplicate wavelength column(s) {values[counts > 1][:5].tolist()} nm")
    if np.any(np.diff(grid) < 0):
        first = int(np.flatnonzero(np.diff(grid) < 0)[0])
        raise DataFileError(f"{source}: wavelength columns must increase from left to right; "
                            f"{grid[first]:g} nm is followed by {grid[first + 1]:g} nm")


def table_dataset(
    frame: pd.DataFrame,
    source: str,
    target_columns: list[str] | None = None,
    split_column: str | None = None,
    id_column: str | None = None,
    units: dict[str, str] | None = None,
    name: str | None = None,
    spectra_only: bool = False,
) -> SpectralDataset:
    """A data set from a table: numeric column names are wavelengths (nm), the rest targets and labels.

    Parameters
    ----------
    target_columns : reference columns to keep; all numeric non-channel columns when None.
    spectra_only : no reference values (transfer standards): ``target_columns`` must be empty.
    split_column : column naming each row's split (e.g. train/test); becomes ``splits``.
    id_column : column with sample names; row numbers when None.
    units : target name -> unit, for reports and predictions.
    """
    import pandas as pd

    wavelengths = {c: _as_wavelength(c) for c in frame.columns}
    channel_columns = [c for c, wl in wavelengths.items() if wl is not None]
    if len(channel_columns) < 2:
        raise DataFileError(f"{source}: found {len(channel_columns)} wavelength columns (their names must be numbers, in nm)")
    label_columns = [c for c in (split_column, id_column) if c is not None]
    missing = [c for c in [*(target_columns or []), *label_columns] if c not in frame.columns]
    if missing:
        others = [str(c) for c in frame.columns if wavelengths[c] is None]
        raise DataFileError(f"{source}: no column(s) {missing}; the non-wavelength columns are {others}")
    if spectra_only:
        target_columns = []
    elif target_columns is None:
        target_columns = [c for c in frame.columns
                          if wavelengths[c] is None and c not in label_columns and pd.api.types.is_numeric_dtype(frame[c])]
    if not target_columns and not spectra_only:
        raise DataFileError(f"{source}: no reference-value column (name the target columns)")
    if frame.empty:
        raise DataFileError(f"{source}: no rows")
    grid = np.array([wavelengths[c] for c in channel_columns])
    _check_grid(grid, source)
    splits = {}
    if split_column is not None:
        labels = frame[split_column]
        if labels.isna().any():
            raise DataFileError(f"{source}: split column {split_column!r} is empty in row(s) {row_numbers(labels.isna().to_numpy())}")
        labels = labels.astype(str).to_numpy()
        splits = {s: np.flatnonzero(labels == s) for s in dict.fromkeys(labels)}
    if id_column is not None:
        if frame[id_column].isna().any():
            raise DataFileError(f"{source}: id column {id_column!r} is empty in row(s) {row_numbers(frame[id_column].isna().to_numpy())}")
        names = frame[id_column].astype(str)
    else:
        names = pd.Series(range(1, len(frame) + 1)).astype(str)
    units = units or {}
    unknown_units = sorted(set(units) - set(target_columns))
    if unknown_units:
        raise DataFileError(f"{source}: units given for {unknown_units}, which are not targets ({target_columns})")
    return SpectralDataset(
        name=name or source,
        X=_numeric_block(frame[channel_columns], "spectra", source),
        y=_numeric_block(frame[target_columns], "reference values", source) if target_columns else np.empty((len(frame), 0)),
        wavelengths=grid,
        target_names=tuple(str(t) for t in target_columns),
        units=tuple(units.get(t, "") for t in target_columns),
        sample_names=tuple(names),
        splits=splits,
    )


def load_table(path: str | Path, *columns, name: str | None = None, **options) -> SpectralDataset:
    """Load spectra and reference values from a CSV or Parquet file; ``columns`` and ``options`` are
    ``table_dataset``'s (one list of them: target_columns, split_column, id_column, units, spectra_only)."""
    path = Path(path)
    return table_dataset(read_frame(path), path.name, *columns, name=name or path.stem, **options)


def write_spectra_table(path: str | Path, data: SpectralDataset, id_column: str = "sample",
                        split_column: str | None = None) -> Path:
    """``data`` as the table ``load_table`` reads back: an id column, (with ``split_column``) each row's split from
    ``data.splits``, its reference columns, one column per wavelength (names with ten significant digits, so an
    irregular-looking rounding never breaks the grid). CSV or Parquet by suffix."""
    import pandas as pd

    path = Path(path)
    frame = pd.DataFrame(data.X, columns=[f"{w:.10g}" for w in data.wavelengths])
    for j, target in reversed(list(enumerate(data.target_names))):
        frame.insert(0, target, data.y[:, j])
    if split_column is not None:
        labels = np.full(data.n_samples, None, dtype=object)
        for split, rows in data.splits.items():
            labels[rows] = split
        if any(label is None for label in labels):
            raise ValueError(f"{data.name}: rows in no split cannot be written with a split column")
        frame.insert(0, split_column, labels)
    frame.insert(0, id_column, list(data.sample_names))
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in {".parquet", ".pq"}:
        frame.to_parquet(path)
    else:
        frame.to_csv(path, index=False)
    return path
