"""Spectra as JCAMP-DX files (a folder or a zip of ``.jdx``/``.dx``), reference values in a CSV by sample id.

Each file is read by ``spectrum_file.read_jcamp``, the reader the analyzer file bridge uses too
(maintained ``jcamp`` package; nm, µm or 1/cm axes converted to nm, channels in increasing
wavelength order). The sample id of a spectrum is its ``##$SAMPLE ID``, else its file name
without the suffix. Every file must share the first file's grid.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from nirstream.core.datasets.base import SpectralDataset
from nirstream.core.datasets.spectrum_file import JCAMP_SUFFIXES, read_jcamp
from nirstream.core.datasets.tabular import DataFileError, read_frame, table_dataset


def _files(path: Path) -> Iterator[tuple[str, bytes]]:
    """(file name, content) of every JCAMP file in a folder or a zip, sorted by name."""
    if path.is_dir():
        for file in sorted(p for p in path.iterdir() if p.suffix.lower() in JCAMP_SUFFIXES):
            yield file.name, file.read_bytes()
    elif zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            for member in sorted(n for n in archive.namelist() if Path(n).suffix.lower() in JCAMP_SUFFIXES):
                yield member, archive.read(member)
    else:
        raise DataFileError(f"{path}: expected a folder or a .zip of JCAMP-DX files")


def load_jcamp(
    path: str | Path,
    references: str | Path,
    id_column: str = "sample",
    target_columns: list[str] | None = None,
    split_column: str | None = None,
    units: dict[str, str] | None = None,
    name: str | None = None,
) -> SpectralDataset:
    """Spectra from the JCAMP-DX files under ``path``, joined with ``references`` (CSV/Parquet) on ``id_column``."""
    path, references = Path(path), Path(references)
    if not path.exists():
        raise FileNotFoundError(f"no such folder or zip: {path}")
    ids, spectra, grid = [], [], None
    for file_name, data in _files(path):
        spectrum = read_jcamp(file_name, data)
        wavelengths, values = spectrum.wavelengths, spectrum.values
        if grid is None:
            grid = wavelengths
        elif wavelengths.shape != grid.shape or not np.allclose(wavelengths, grid, rtol=0, atol=1e-6 * np.ptp(grid)):
            raise DataFileError(f"{file_name}: wavelength grid differs from the first file's "
                                f"({wavelengths.size} channels {wavelengths[0]:g}-{wavelengths[-1]:g} nm vs "
                                f"{grid.size} channels {grid[0]:g}-{grid[-1]:g} nm)")
        ids.append(spectrum.sample_id)
        spectra.append(values)
    if grid is None:
        raise DataFileError(f"{path}: no .jdx or .dx files")
    if len(set(ids)) != len(ids):
        raise DataFileError(f"{path}: several files with the same sample id (##$SAMPLE ID, else file name without suffix)")
    labels = read_frame(references)
    if id_column not in labels.columns:
        raise DataFileError(f"{references.name}: no id column {id_column!r}; columns are {list(labels.columns)}")
    labels = labels.assign(**{id_column: labels[id_column].astype(str)})
    if labels[id_column].duplicated().any():
        raise DataFileError(f"{references.name}: sample id(s) {labels[id_column][labels[id_column].duplicated()].tolist()[:5]} "
                            "appear more than once")
    missing = sorted(set(ids) - set(labels[id_column]))
    if missing:
        raise DataFileError(f"{references.name}: no reference values for {len(missing)} spectrum file(s), e.g. {missing[:5]}")
    spectra_frame = pd.DataFrame(np.vstack(spectra), columns=[repr(float(w)) for w in grid])
    spectra_frame.insert(0, id_column, ids)
    frame = spectra_frame.merge(labels, on=id_column, how="left", validate="one_to_one")
    if target_columns is None:
        target_columns = [c for c in labels.columns if c not in (id_column, split_column)
                          and pd.api.types.is_numeric_dtype(labels[c])]
    return table_dataset(frame, f"{path.name} + {references.name}", target_columns, split_column, id_column, units,
                         name or path.stem)
