"""Put spectra measured on one wavelength axis onto another by linear interpolation.

Used where a file's axis is not the model's: ``nirstream evaluate --data`` on a file whose grid
covers the model's window, and training data on an irregular axis (e.g. JCAMP-DX files in
wavenumbers), which is put on a regular grid of the same span and channel count because
spectrum messages carry a regular grid. Linear interpolation between neighbouring channels:
it never invents structure finer than the source's spacing, and on a grid finer than the
model's it adds no error beyond the source's own sampling. Channels of the model's input grid
outside its window are filled with the nearest measured value; the window cut discards them.
"""

from __future__ import annotations

import numpy as np

from nirstream.core.messages.common import WavelengthGrid


def is_regular(wavelengths: np.ndarray, rtol: float = 1e-3) -> bool:
    try:
        WavelengthGrid.from_wavelengths(np.asarray(wavelengths, dtype=np.float64), rtol=rtol)
    except ValueError:
        return False
    return True


def regular_grid(wavelengths: np.ndarray) -> WavelengthGrid:
    """The regular grid with the same first and last wavelength and channel count."""
    wavelengths = np.asarray(wavelengths, dtype=np.float64)
    return WavelengthGrid(start_nm=float(wavelengths[0]), step_nm=float((wavelengths[-1] - wavelengths[0]) / (wavelengths.size - 1)),
                          count=int(wavelengths.size))


def resample(spectra: np.ndarray, wavelengths: np.ndarray, onto: np.ndarray) -> np.ndarray:
    """Each row of ``spectra`` (on increasing ``wavelengths``) linearly interpolated at ``onto``; beyond the measured
    range the edge value is repeated (callers check that the part that matters is covered)."""
    spectra = np.atleast_2d(np.asarray(spectra, dtype=np.float64))
    return np.vstack([np.interp(onto, wavelengths, row) for row in spectra])


def on_regular_grid(spectra: np.ndarray, wavelengths: np.ndarray) -> tuple[WavelengthGrid, np.ndarray]:
    """(grid, spectra) for spectra on increasing ``wavelengths``: as they are when the axis is regular, else linearly
    resampled onto the regular grid of the same span and channel count (e.g. JCAMP-DX in wavenumbers)."""
    if is_regular(wavelengths):
        return WavelengthGrid.from_wavelengths(wavelengths), np.asarray(spectra, dtype=np.float64)
    grid = regular_grid(wavelengths)
    resampled = resample(spectra, wavelengths, grid.wavelengths())
    return grid, resampled.reshape(np.shape(spectra))


def onto_model_grid(spectra: np.ndarray, wavelengths: np.ndarray, grid: WavelengthGrid,
                    window_nm: tuple[float | None, float | None] = (None, None), tolerance_nm: float = 0.01) -> np.ndarray:
    """Spectra ready for a model whose input grid is ``grid`` and which looks at ``window_nm`` of it.

    Same grid: returned as they are. Otherwise the file's axis must cover the window (or the whole grid
    without one); the spectra are then linearly interpolated onto ``grid``.
    """
    wavelengths = np.asarray(wavelengths, dtype=np.float64)
    target = grid.wavelengths()
    if wavelengths.shape == target.shape and np.all(np.abs(wavelengths - target) <= tolerance_nm):
        return np.asarray(spectra, dtype=np.float64)
    first = window_nm[0] if window_nm[0] is not None else grid.start_nm
    last = window_nm[1] if window_nm[1] is not None else grid.end_nm
    needed = target[(target >= first) & (target <= last)]
    if wavelengths[0] > needed[0] + tolerance_nm or wavelengths[-1] < needed[-1] - tolerance_nm:
        raise ValueError(f"the data's wavelengths {wavelengths[0]:g}-{wavelengths[-1]:g} nm do not cover the model's "
                         f"window {needed[0]:g}-{needed[-1]:g} nm")
    return resample(spectra, wavelengths, target)
