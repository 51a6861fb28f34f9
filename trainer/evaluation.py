"""``nirstream evaluate``: a published model's figures on a built-in protocol's test sets or on a user's file.

Predictions go through ``Predictor`` (the worker's code path). Per target: RMSEP with its bootstrap
interval, bias, SEP, R², slope, and the share of reference values inside the prediction interval.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nirstream.core.datasets import SpectralDataset
from nirstream.core.figures_of_merit import regression_metrics, rmsep_interval
from nirstream.core.predictor import Predictor
from nirstream.core.resampling import onto_model_grid
from trainer.protocols import DataSource, load_protocol


def figures(predictor: Predictor, X: np.ndarray, dataset: SpectralDataset) -> dict[str, dict[str, Any]]:
    """Per target the model predicts and ``dataset`` has reference values for."""
    predicted = predictor.predict(X).values
    targets = [t for t in predictor.targets if t in dataset.target_names]
    if not targets:
        raise ValueError(f"{dataset.name} has no reference values for the model's targets {list(predictor.targets)} "
                         f"(it has {list(dataset.target_names)})")
    result = {}
    for target in targets:
        column = predictor.targets.index(target)
        reference, values = dataset.target(target), predicted[:, column]
        entry = {**regression_metrics(reference, values), "rmsep_ci95": rmsep_interval(reference, values)}
        if predictor.intervals is not None:
            entry["interval_coverage"] = float(np.mean(np.abs(values - reference) <= predictor.intervals.half_width[target]))
        result[target] = entry
    return result


def evaluate_protocol(predictor: Predictor, protocol_name: str) -> dict[str, Any]:
    protocol = load_protocol(protocol_name, [t for t in predictor.targets], full_grid=True)
    return {"protocol": protocol.name,
            "tests": {name: figures(predictor, data.X, data) for name, data in protocol.tests.items()}}


def evaluate_data(predictor: Predictor, options: dict) -> dict[str, Any]:
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
    tests = {name: figures(predictor, X[rows], data.rows(rows)) for name, rows in parts.items()}
    return {"data": str(source.path), "tests": tests, **({"resampled": resampled} if resampled else {})}
