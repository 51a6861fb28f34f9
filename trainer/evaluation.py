"""``nirstream evaluate``: a published model's figures on a built-in protocol's test sets or on a user's file.

Predictions go through ``Predictor`` (the worker's code path). Per target: RMSEP with its bootstrap
interval, bias, SEP, R², slope, and the share of reference values inside the prediction interval.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nirstream.core.datasets import SpectralDataset
from nirstream.core.chemometrics.figures_of_merit import figures_per_target
from nirstream.core.serving.predictor import Predictor
from nirstream.core.chemometrics.resampling import onto_model_grid
from nirstream.trainer.intervals import empirical_coverage
from nirstream.trainer.data_splits import DataSource, load_protocol


def figures(predictor: Predictor, X: np.ndarray, dataset: SpectralDataset, analyzer: str | None = None) -> dict[str, dict[str, Any]]:
    """Per target the model predicts and ``dataset`` has reference values for; spectra from ``analyzer`` (its
    calibration transfer applied, as the worker does, when ``predictor`` carries one)."""
    predicted = predictor.predict(X, None if analyzer is None else [analyzer] * len(X)).values
    targets = [t for t in predictor.targets if t in dataset.target_names]
    if not targets:
        raise ValueError(f"{dataset.name} has no reference values for the model's targets {list(predictor.targets)} "
                         f"(it has {list(dataset.target_names)})")
    reference = np.column_stack([dataset.target(t) for t in targets])
    values = predicted[:, [predictor.targets.index(t) for t in targets]]
    result = figures_per_target(reference, values, targets)
    if predictor.intervals is not None:
        for target, entry in empirical_coverage(reference, values, predictor.intervals, targets).items():
            result[target]["interval_coverage"] = entry["coverage"]
    return result


def evaluate_protocol(predictor: Predictor, protocol_name: str, analyzer: str | None = None) -> dict[str, Any]:
    protocol = load_protocol(protocol_name, [t for t in predictor.targets], full_grid=True)
    return {"protocol": protocol.name,
            "tests": {name: figures(predictor, data.X, data, analyzer) for name, data in protocol.tests.items()}}


def evaluate_data(predictor: Predictor, options: dict, analyzer: str | None = None) -> dict[str, Any]:
    """Every row of the file (or each split of its split column), on the model's grid."""
    source = DataSource(**{"targets": [t for t in predictor.targets], **options})
    data = source.load()
    preprocessor = predictor.bundle.preprocessor
    X = onto_model_grid(data.X, data.wavelengths, predictor.grid, (preprocessor.first_nm, preprocessor.last_nm))
    resampled = None
    if X is not data.X and not np.array_equal(X, data.X):
        resampled = (f"{data.n_channels} channels {data.wavelengths[0]:g}-{data.wavelengths[-1]:g} nm linearly "
                     f"interpolated onto the model's {predictor.grid.count} channels")
    parts = {"data": np.arange(data.n_samples)} if not data.splits else data.splits
    tests = {name: figures(predictor, X[rows], data.rows(rows), analyzer) for name, rows in parts.items()}
    return {"data": str(source.path), "tests": tests, **({"resampled": resampled} if resampled else {})}
