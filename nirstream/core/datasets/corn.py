"""Eigenvector's corn set: 80 corn samples measured on three NIR instruments (m5, mp5, mp6).

700 channels, 1100-2498 nm at 2 nm; moisture, oil, protein and starch in percent (the same lab values for
every instrument, so sample names match across instruments). A small, multi-instrument set of the kind a plant
has: a few dozen lab-referenced samples. Redistribution rights are not cleared, so it is fetched with the
tablets (``nirstream data fetch``) and never shipped. It has no published split.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nirstream.core.datasets.base import SpectralDataset
from nirstream.core.datasets.fetched import FetchedFile

CORN_INSTRUMENTS = ("m5", "mp5", "mp6")
CORN_TARGETS = ("moisture", "oil", "protein", "starch")
CORN_FILE = FetchedFile("spectra_sherpa/data/eigenvector/corn_mat/corn.mat", "corn.mat",
                        "e28fd4be274a54ca57b1f2c67ef5a8bf4981f8314bcc73e4c64836fe658c46b5", "NIRSTREAM_CORN_PATH",
                        "Eigenvector corn")


def load_corn(instrument: str = "m5", path: str | Path | None = None) -> SpectralDataset:
    """The 80 corn samples as measured on ``instrument`` (m5, mp5 or mp6)."""
    from scipy.io import loadmat

    if instrument not in CORN_INSTRUMENTS:
        raise ValueError(f"instrument must be one of {', '.join(CORN_INSTRUMENTS)}, got {instrument!r}")
    mat = loadmat(CORN_FILE.verified(path), struct_as_record=False, squeeze_me=True)
    spectra = mat[f"{instrument}spec"]
    X = np.asarray(spectra.data, dtype=np.float64)
    return SpectralDataset(
        name=f"corn-{instrument}",
        X=X,
        y=np.asarray(mat["propvals"].data, dtype=np.float64),
        wavelengths=np.asarray(spectra.axisscale[1][0], dtype=np.float64),
        target_names=CORN_TARGETS,
        units=("%",) * len(CORN_TARGETS),
        sample_names=tuple(f"corn-{i:02d}" for i in range(X.shape[0])),
        splits={},
    )
