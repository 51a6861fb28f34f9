"""One spectrum per file, as analyzers write them: JCAMP-DX or a two-column CSV.

The one reader of such files: training (``load_jcamp``) and the analyzer file bridge
(``nirstream ingest``) both parse through here, so a file means the same thing to both.

* JCAMP-DX (``.jdx``, ``.dx``, ``.jcamp``): read with the maintained ``jcamp`` package (it decodes the
  compressed ASDF forms instruments write). Abscissae in wavenumbers (``##XUNITS=1/CM``) or µm are
  converted to nm. A file must end with ``##END=`` and hold ``##NPOINTS`` points when it declares them:
  a truncated file is refused, not read short.
* CSV (``.csv``): a header ``wavelength_nm,value`` and one row per channel; an optional third column
  ``sample_id`` holds the sample id in its first row (other rows empty or the same).

Sample id: JCAMP-DX ``##$SAMPLE ID`` or the CSV's ``sample_id`` when given, else the file name
without its suffix. ``##TITLE`` is not used: instruments fill it with free text.
Channels come back in increasing wavelength order.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from nirstream.core.datasets.tabular import DataFileError, row_numbers, snippet

JCAMP_SUFFIXES = frozenset({".jdx", ".dx", ".jcamp"})
CSV_SUFFIXES = frozenset({".csv"})
CSV_COLUMNS = ("wavelength_nm", "value")
CSV_SAMPLE_COLUMN = "sample_id"
JCAMP_SAMPLE_LABEL = "$sample id"  # ##$SAMPLE ID= (the jcamp package lower-cases labels)
_CONTROL_BYTES = bytes(b for b in range(32) if b not in b"\t\n\r\f")


@dataclass(frozen=True)
class FileSpectrum:
    """One spectrum read from a file: increasing wavelengths (nm), values, and the sample id."""

    wavelengths: np.ndarray
    values: np.ndarray
    sample_id: str


def file_text(name: str, data: bytes) -> str:
    """The text of a spectrum file; binary content (control bytes such as NUL) is refused."""
    if not data.strip():
        raise DataFileError(f"{name}: empty file")
    if any(byte in _CONTROL_BYTES for byte in data[:65536]):
        raise DataFileError(f"{name}: binary content (control bytes), not a text spectrum file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")  # older vendor software writes Windows code pages (°, µ in labels)


def _sorted_spectrum(name: str, x: np.ndarray, y: np.ndarray, sample_id: str) -> FileSpectrum:
    if x.ndim != 1 or x.shape != y.shape or x.size < 2:
        raise DataFileError(f"{name}: expected one x/y spectrum with at least two points, got x {x.shape} and y {y.shape}")
    if not np.isfinite(x).all():
        raise DataFileError(f"{name}: the wavelength axis has NaN or infinite values")
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    if np.any(np.diff(x) == 0):
        raise DataFileError(f"{name}: wavelength {x[np.flatnonzero(np.diff(x) == 0)[0]]:g} nm appears twice")
    return FileSpectrum(x, y, sample_id)


def read_jcamp(name: str, data: bytes) -> FileSpectrum:
    """One JCAMP-DX spectrum (wavelengths in nm, increasing)."""
    import jcamp

    text = file_text(name, data)
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # it prints some complaints instead of raising
            parsed = jcamp.read(io.StringIO(text))
        x, y = np.asarray(parsed["x"], dtype=np.float64), np.asarray(parsed["y"], dtype=np.float64)
    except Exception as exc:  # noqa: BLE001 - the reader raises many types on malformed files
        raise DataFileError(f"{name}: not a readable JCAMP-DX spectrum ({type(exc).__name__}: "
                            f"{snippet(exc, 120)})") from None
    if x.size == 0:
        raise DataFileError(f"{name}: no ##XYDATA, ##XYPOINTS or ##PEAK TABLE data: not a JCAMP-DX spectrum")
    if "end" not in parsed:
        raise DataFileError(f"{name}: no ##END= (truncated file?)")
    declared = parsed.get("npoints")
    if declared is not None and int(declared) != x.size:
        raise DataFileError(f"{name}: ##NPOINTS={declared} but {x.size} points read (truncated file?)")
    units = str(parsed.get("xunits", "nanometers")).strip().upper()
    if units in {"1/CM", "CM-1", "CM^-1", "WAVENUMBERS"}:
        x = 1e7 / x  # wavenumber (cm⁻¹) -> wavelength (nm)
    elif units == "MICROMETERS":
        x = x * 1e3
    elif units not in {"NANOMETERS", "NM"}:
        raise DataFileError(f"{name}: ##XUNITS={snippet(units)} (expected NANOMETERS, MICROMETERS or 1/CM)")
    sample_id = str(parsed.get(JCAMP_SAMPLE_LABEL, "")).strip() or Path(name).stem
    return _sorted_spectrum(name, x, y, sample_id)


def read_spectrum_csv(name: str, data: bytes) -> FileSpectrum:
    """One spectrum from a ``wavelength_nm,value[,sample_id]`` CSV (see the module docstring)."""
    text = file_text(name, data)
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeError) as exc:
        raise DataFileError(f"{name}: not a readable CSV ({snippet(exc, 120)})") from None
    columns = [str(c).strip() for c in frame.columns]
    frame.columns = columns
    if tuple(columns[:2]) != CSV_COLUMNS or not set(columns[2:]) <= {CSV_SAMPLE_COLUMN}:
        raise DataFileError(f"{name}: header must be {','.join(CSV_COLUMNS)}[,{CSV_SAMPLE_COLUMN}], "
                            f"got {snippet(','.join(columns), 80)}")
    if frame.empty:
        raise DataFileError(f"{name}: a header but no rows")
    wavelengths, values = (_numbers(frame[column], name) for column in CSV_COLUMNS)
    sample_id = Path(name).stem
    if CSV_SAMPLE_COLUMN in frame.columns:
        given = {s.strip() for s in frame[CSV_SAMPLE_COLUMN]} - {""}
        if len(given) > 1:
            raise DataFileError(f"{name}: {CSV_SAMPLE_COLUMN} column holds several ids "
                                f"{snippet(', '.join(sorted(given)[:3]), 80)}; one file, one sample")
        sample_id = given.pop() if given else sample_id
    return _sorted_spectrum(name, wavelengths, values, sample_id)


def _numbers(column: pd.Series, name: str) -> np.ndarray:
    """A column as floats. Text is refused with its rows; NaN/inf are kept, as in JCAMP-DX files, for the
    caller's finiteness check (the bridge's ``non_finite``, training's row check)."""
    text = column.str.strip()
    numbers = pd.to_numeric(text, errors="coerce")
    bad = (numbers.isna() & (text.str.lower() != "nan")).to_numpy()
    if bad.any():
        raise DataFileError(f"{name}: column {column.name!r} is not a number in row(s) {row_numbers(bad)}: "
                            f"{snippet(text[bad].iloc[0])}")
    return numbers.to_numpy(dtype=np.float64)


FORMATS = {"jcamp": (read_jcamp, JCAMP_SUFFIXES), "csv": (read_spectrum_csv, CSV_SUFFIXES)}


def write_spectrum_csv(path: str | Path, wavelengths: np.ndarray, values: np.ndarray, sample_id: str | None = None) -> Path:
    """A spectrum as the CSV ``read_spectrum_csv`` reads back (full float precision)."""
    frame = pd.DataFrame({CSV_COLUMNS[0]: np.asarray(wavelengths, dtype=np.float64),
                          CSV_COLUMNS[1]: np.asarray(values, dtype=np.float64)})
    if sample_id is not None:
        frame[CSV_SAMPLE_COLUMN] = [sample_id] + [""] * (len(frame) - 1)
    path = Path(path)
    frame.to_csv(path, index=False, float_format="%.17g")
    return path
