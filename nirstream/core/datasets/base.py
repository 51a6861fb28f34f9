"""The dataset object every loader returns."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace

import numpy as np


@dataclass(frozen=True)
class SpectralDataset:
    """Spectra with reference values.

    Attributes
    ----------
    name : str
    X : ndarray of shape (n_samples, n_channels)
    y : ndarray of shape (n_samples, n_targets)
    wavelengths : ndarray of shape (n_channels,), in nm
    target_names, units : tuple of str, one per target column
    sample_names : tuple of str, one per spectrum
    splits : dict of split name -> row indices into X
    """

    name: str
    X: np.ndarray
    y: np.ndarray
    wavelengths: np.ndarray
    target_names: tuple[str, ...]
    units: tuple[str, ...]
    sample_names: tuple[str, ...]
    splits: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n, p = self.X.shape
        if self.y.shape != (n, len(self.target_names)):
            raise ValueError(f"y has shape {self.y.shape}, expected ({n}, {len(self.target_names)})")
        if self.wavelengths.shape != (p,):
            raise ValueError(f"wavelengths has shape {self.wavelengths.shape}, expected ({p},)")
        if len(self.units) != len(self.target_names) or len(self.sample_names) != n:
            raise ValueError("units must match target_names and sample_names must match the rows")
        for split, rows in self.splits.items():
            if rows.size and (rows.min() < 0 or rows.max() >= n):
                raise ValueError(f"split {split!r} indexes outside the {n} rows")

    @property
    def n_samples(self) -> int:
        return self.X.shape[0]

    @property
    def n_channels(self) -> int:
        return self.X.shape[1]

    def target(self, name: str) -> np.ndarray:
        """One reference column as a 1-D array."""
        try:
            return self.y[:, self.target_names.index(name)]
        except ValueError:
            raise KeyError(f"unknown target {name!r}; this data set has {', '.join(self.target_names)}") from None

    def unit(self, name: str) -> str:
        return self.units[self.target_names.index(name)]

    def select_targets(self, names: list[str] | tuple[str, ...]) -> SpectralDataset:
        """Only the named reference columns, in the order given."""
        columns = [self.target_names.index(n) if n in self.target_names else self.target(n) for n in names]
        return replace(self, y=self.y[:, columns], target_names=tuple(names),
                       units=tuple(self.units[c] for c in columns))

    def split(self, *names: str) -> SpectralDataset:
        """The rows of one or more splits (in the order given), as a dataset without splits."""
        missing = [n for n in names if n not in self.splits]
        if missing:
            raise KeyError(f"unknown split(s) {missing}; this data set has {', '.join(self.splits)}")
        return self.rows(np.concatenate([self.splits[n] for n in names]), name=f"{self.name}[{'+'.join(names)}]")

    def rows(self, index: np.ndarray, name: str | None = None) -> SpectralDataset:
        index = np.asarray(index)
        return replace(
            self,
            name=name or self.name,
            X=self.X[index],
            y=self.y[index],
            sample_names=tuple(self.sample_names[i] for i in index),
            splits={},
        )

    def channels(self, start_nm: float, stop_nm: float) -> SpectralDataset:
        """Keep channels with ``start_nm <= wavelength <= stop_nm``."""
        keep = (self.wavelengths >= start_nm) & (self.wavelengths <= stop_nm)
        if not keep.any():
            raise ValueError(f"no channels between {start_nm} and {stop_nm} nm")
        return replace(self, X=self.X[:, keep], wavelengths=self.wavelengths[keep])

    def fingerprint(self) -> str:
        """sha256 over spectra, targets and wavelengths: identifies the exact training data."""
        digest = hashlib.sha256()
        for array in (self.X, self.y, self.wavelengths):
            digest.update(np.ascontiguousarray(array, dtype="<f8").tobytes())
        digest.update("\x1f".join(self.target_names).encode())
        return digest.hexdigest()
