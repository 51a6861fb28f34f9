"""Data sets as one small object: spectra, targets, wavelengths, names and splits."""

from nirstream.core.datasets.base import SpectralDataset
from nirstream.core.datasets.tablets import TABLETS_SHA256, fetch_tablets, load_tablets, tablets_path
from nirstream.core.datasets.tabular import load_table
from nirstream.core.datasets.tecator import load_tecator

__all__ = [
    "SpectralDataset",
    "TABLETS_SHA256",
    "fetch_tablets",
    "load_table",
    "load_tablets",
    "load_tecator",
    "tablets_path",
]
