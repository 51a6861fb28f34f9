"""Fit a calibration transfer from standards measured on the master and on the slave instrument.

PDS and DS come from chemotools (``PiecewiseDirectStandardization``, ``DirectStandardization``): maintained,
scikit-learn-style, checked against hand-computed cases in tests/test_transfer.py. Both reduce to a linear map
``x_slave @ matrix + offset``, which is all the artifact stores, so the worker applies them without chemotools.
SBC (slope/bias correction) is fitted here: least squares of the master's predictions on the slave's, per target.
"""

from __future__ import annotations

import numpy as np

from nirstream.core.datasets import SpectralDataset
from nirstream.core.chemometrics.figures_of_merit import rmse
from nirstream.core.serving.predictor import Predictor
from nirstream.core.artifacts.transfer import CalibrationTransfer, TransferError, TransferMetadata

PDS_HALF_WINDOW = 5  # channels each side: a few nm on NIR grids, wide enough for a wavelength shift of a channel or two
PDS_COMPONENTS = 2


def paired_standards(master: SpectralDataset, slave: SpectralDataset) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The standards both files hold, matched by sample id: (ids, master spectra, slave spectra)."""
    if master.n_channels != slave.n_channels or not np.allclose(master.wavelengths, slave.wavelengths, atol=0.01):
        raise TransferError("master and slave spectra are on different wavelength grids")
    slave_rows = {name: i for i, name in enumerate(slave.sample_names)}
    if len(slave_rows) != slave.n_samples or len(set(master.sample_names)) != master.n_samples:
        raise TransferError("each transfer standard must appear once per file (average replicates first)")
    ids = [name for name in master.sample_names if name in slave_rows]
    missing = sorted(set(master.sample_names) ^ set(slave_rows))
    if len(ids) < 3:
        raise TransferError(f"only {len(ids)} standards are in both files (matched by sample id); at least 3 needed"
                            + (f"; unmatched: {missing[:10]}" if missing else ""))
    master_rows = {name: i for i, name in enumerate(master.sample_names)}
    return ids, master.X[[master_rows[i] for i in ids]], slave.X[[slave_rows[i] for i in ids]]


def fit_transfer(method: str, predictor: Predictor, master: SpectralDataset, slave: SpectralDataset, analyzer: str,
                 half_window: int = PDS_HALF_WINDOW, components: int = PDS_COMPONENTS, by: str = "") -> CalibrationTransfer:
    """A transfer for ``analyzer`` (the slave) towards the instrument ``predictor``'s model was trained on."""
    grid = predictor.grid
    grid.require_match(slave_grid(slave))
    ids, X_master, X_slave = paired_standards(master, slave)
    matrix = offset = slope = bias = None
    parameters: dict = {}
    if method == "pds":
        from chemotools.adaptation import PiecewiseDirectStandardization

        components = min(components, len(ids) - 1, half_window + 1)
        pds = PiecewiseDirectStandardization(window_length=half_window, n_components=components, scale=False)
        pds.fit(X_slave, X_source=X_master)
        matrix, offset = pds.T_, pds.bias_
        parameters = {"half_window_channels": half_window, "components": components}
    elif method == "ds":
        from chemotools.adaptation import DirectStandardization

        ds = DirectStandardization().fit(X_slave, X_source=X_master)
        matrix, offset = ds.V_ds_ @ ds.B_ds_, np.zeros(grid.count)
    elif method == "sbc":
        master_values, slave_values = predictor.predict(X_master).values, predictor.predict(X_slave).values
        slope, bias = {}, {}
        for j, target in enumerate(predictor.targets):
            b, a = np.polyfit(slave_values[:, j], master_values[:, j], 1)
            slope[target], bias[target] = float(b), float(a)
    else:
        raise TransferError(f"unknown method {method!r}: use pds, ds or sbc")
    transfer = CalibrationTransfer(TransferMetadata(
        analyzer=analyzer, method=method, model_version=predictor.version, grid=grid, targets=list(predictor.targets),
        standards=ids, prediction_slope=slope, prediction_bias=bias, parameters=parameters, by=by), matrix, offset)
    transfer.metadata.figures = _figures_on_standards(transfer, predictor, X_master, X_slave)
    return transfer


def _figures_on_standards(transfer: CalibrationTransfer, predictor: Predictor, X_master: np.ndarray,
                          X_slave: np.ndarray) -> dict:
    """How far the slave's predictions of the standards are from the master's, before and after (fit data: optimistic)."""
    master = predictor.predict(X_master).values
    before = predictor.predict(X_slave).values
    after = transfer.correct(predictor.predict(transfer.standardise(X_slave)).values, predictor.targets)
    return {t: {"rms_difference_before": rmse(before[:, j], master[:, j]), "rms_difference_after": rmse(after[:, j], master[:, j])}
            for j, t in enumerate(predictor.targets)}


def slave_grid(data: SpectralDataset):
    from nirstream.core.messages.common import WavelengthGrid

    return WavelengthGrid.from_wavelengths(data.wavelengths)
