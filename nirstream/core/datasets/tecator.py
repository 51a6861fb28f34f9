"""The Tecator meat set shipped with nirstream (see data/tecator/NOTICE for its permission note)."""

from __future__ import annotations

from importlib.resources import as_file, files

from nirstream.core.datasets.base import SpectralDataset
from nirstream.core.datasets.tabular import load_table

TECATOR_TARGETS = ("water", "fat", "protein")


def load_tecator() -> SpectralDataset:
    """215 spectra x 100 channels (850-1050 nm absorbance); targets water, fat, protein in %.

    Splits ``train`` (129), ``monitor`` (43), ``test`` (43), as originally distributed.
    """
    resource = files("nirstream.core.datasets") / "data" / "tecator" / "tecator.csv"
    with as_file(resource) as path:
        return load_table(
            path,
            target_columns=list(TECATOR_TARGETS),
            split_column="set",
            id_column="sample",
            units={t: "%" for t in TECATOR_TARGETS},
            name="tecator",
        )
