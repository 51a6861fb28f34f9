"""``nirstream evaluate``: a published model's figures on a built-in protocol's test sets or on a user's file.

Predictions go through ``Predictor`` (the worker's code path). Per target: RMSEP with its bootstrap
interval, bias, SEP, R², slope, and the share of reference values inside the prediction interval.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nirstream.core.datasets import SpectralDataset
from nirstream.core.errors import RejectReason
from nirstream.core.chemometrics.figures_of_merit import figures_per_target
from nirstream.core.serving.predictor import BatchPrediction, Predictor
from nirstream.core.chemometrics.resampling import onto_model_grid
from nirstream.trainer.intervals import empirical_coverage
from nirstream.trainer.domain_shares import extrapolation_warnings, flag_shares
from nirstream.trainer.data_splits import DataSource, load_protocol


def figures(predictor: Predictor, X: np.ndarray, dataset: SpectralDataset, analyzer: str | None = None,
            split: str = "data", batch: BatchPrediction | None = None) -> tuple[dict[str, dict[str, Any]], list[dict]]:
    """Per target the model predicts and ``dataset`` has reference values for; spectra from ``analyzer`` (its
    calibration transfer applied, as the worker does, when ``predictor`` carries one). Also the spectra not
    predicted: those the worker's screen finds degenerate (it dead-letters them), by ``split``, row and sample.
    ``batch``: the predictions of ``X``, when already made."""
    batch = batch or predictor.predict(X, None if analyzer is None else [analyzer] * len(X))
    degenerate = batch.degenerate != ""
    not_predicted = [{"split": split, "row": int(i) + 1, "sample": dataset.sample_names[i],
                      "reason": RejectReason.DEGENERATE.value, "detail": batch.degenerate[i]}
                     for i in np.flatnonzero(degenerate)]
    predicted, dataset = batch.values[~degenerate], dataset.rows(np.flatnonzero(~degenerate))
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
    return result, not_predicted


def evaluate_protocol(predictor: Predictor, protocol_name: str, analyzer: str | None = None) -> dict[str, Any]:
    protocol = load_protocol(protocol_name, [t for t in predictor.targets], full_grid=True)
    return {"protocol": protocol.name,
            **_per_split(predictor, {name: (data.X, data) for name, data in protocol.tests.items()}, analyzer)}


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
    figured = _per_split(predictor, {name: (X[rows], data.rows(rows)) for name, rows in parts.items()}, analyzer)
    return {"data": str(source.path), **figured, **({"resampled": resampled} if resampled else {})}


def _per_split(predictor: Predictor, splits: dict[str, tuple[np.ndarray, SpectralDataset]],
               analyzer: str | None) -> dict[str, Any]:
    """``tests``: figures per split; ``domain``: per split, the shares the model's own checks flag (the worker's
    flags), and ``domain_warnings`` for the splits outside the domain; with ``left_out`` and ``not_predicted`` (counts
    per split and reason) when the worker's screen left spectra out."""
    tests, left_out, domain = {}, [], {}
    for name, (X, dataset) in splits.items():
        batch = predictor.predict(X, None if analyzer is None else [analyzer] * len(X))
        tests[name], dropped = figures(predictor, X, dataset, analyzer, name, batch)
        domain[name] = flag_shares(batch.flags[batch.degenerate == ""])
        left_out += dropped
    shares = {"tests": tests, "domain": domain, "domain_warnings": extrapolation_warnings(domain)}
    if not left_out:
        return shares
    not_predicted: dict[str, dict[str, int]] = {}
    for entry in left_out:
        counts = not_predicted.setdefault(entry["split"], {})
        counts[entry["reason"]] = counts.get(entry["reason"], 0) + 1
    return {**shares, "left_out": left_out, "not_predicted": not_predicted}
