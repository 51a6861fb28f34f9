"""Batch prediction with a loaded bundle: preprocessing, one compiled model call, T²/Q flags.

The trainer evaluates through this class too, so offline and online numbers come from the
same code path.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np

from nirstream.core.artifacts.bundle import ModelBundle
from nirstream.core.chemometrics.linear_model import LinearModel
from nirstream.core.runtimes.keras_serving import compiled_prediction
from nirstream.core.runtimes.onnx_model import OnnxModel


@dataclass(frozen=True)
class BatchPrediction:
    values: np.ndarray  # (n, k): one column per target, in the targets' units
    spread: np.ndarray  # (n, k): standard deviation of the seed-ensemble members' predictions (NaN: one model)
    hotelling_t2: np.ndarray
    q_residual: np.ndarray
    flags: np.ndarray  # 'ok' | 'warning' | 'outlier'
    degenerate: np.ndarray  # per spectrum, why it cannot be predicted ('' when it can); such rows carry NaN values
    preprocess_seconds: float
    inference_seconds: float
    transfer: np.ndarray  # per spectrum, the calibration transfer applied ('' when none)

    def keep(self, rows: np.ndarray) -> BatchPrediction:
        """The predictions of the rows selected by a boolean mask."""
        return BatchPrediction(**{f: getattr(self, f)[rows] for f in _ROW_FIELDS},
                               preprocess_seconds=self.preprocess_seconds, inference_seconds=self.inference_seconds)

    @classmethod
    def concatenate(cls, parts: list[BatchPrediction]) -> BatchPrediction:
        """Several batches' predictions as one, rows in order, times added up."""
        return cls(**{f: np.concatenate([getattr(p, f) for p in parts]) for f in _ROW_FIELDS},
                   preprocess_seconds=sum(p.preprocess_seconds for p in parts),
                   inference_seconds=sum(p.inference_seconds for p in parts))


_ROW_FIELDS = tuple(f.name for f in fields(BatchPrediction) if not f.name.endswith("_seconds"))


def plausible_reference_bounds(target_range: tuple[float, float] | None, mean: float, scale: float) -> tuple[float, float]:
    """Lab values outside these bounds are implausible for this model: the training range widened by its own
    width on each side (a lab value three times as far from the middle as anything trained on is a typo, a unit
    or a sample mix-up, not chemistry). Bundles without a stored range: mean ± 10 standard deviations."""
    if target_range is None:
        return mean - 10 * scale, mean + 10 * scale
    low, high = target_range
    width = max(high - low, 1e-9 * max(abs(low), abs(high), 1.0))
    return low - width, high + width


PADDED_BATCH_SIZES = (8, 16, 32, 64, 128, 256)


def padded_size(n: int) -> int:
    """The fixed batch size a batch of ``n`` runs at: a bucket, or a multiple of the largest."""
    for size in PADDED_BATCH_SIZES:
        if n <= size:
            return size
    largest = PADDED_BATCH_SIZES[-1]
    return -(-n // largest) * largest


class Predictor:
    """Wraps a bundle's model in a ``tf.function``; batches are zero-padded to a few fixed sizes.

    Padding keeps the compiled kernels to a handful of shapes and makes a spectrum's prediction
    independent of how many others share its batch (a lone spectrum would otherwise take a
    different, not bit-identical kernel path), so a replayed batch gives identical values.
    """

    def __init__(self, bundle: ModelBundle):
        self.bundle = bundle
        self.version = bundle.version
        meta = bundle.metadata
        self.targets, self.grid = tuple(meta.targets), meta.input_grid
        self.units = {t: meta.unit(t) for t in self.targets}
        self._y_mean, self._y_scale = np.asarray(meta.target_mean), np.asarray(meta.target_scale)
        ranges = meta.target_range or {}
        self.reference_bounds = {t: plausible_reference_bounds(ranges.get(t), m, s)
                                 for t, m, s in zip(self.targets, meta.target_mean, meta.target_scale, strict=True)}
        self.intervals = meta.intervals
        self._half_widths = (np.array([meta.intervals.half_width[t] for t in self.targets])
                             if meta.intervals is not None else None)
        self.transfers: dict = {}  # analyzer -> CalibrationTransfer applied to its spectra (see with_transfers)
        if isinstance(bundle.model, LinearModel):  # PLS and other linear models: a matrix product, no framework
            self.is_ensemble, self._input_shape = False, (bundle.model.n_inputs,)
            self._call = bundle.model.predict
            return
        if isinstance(bundle.model, OnnxModel):  # ONNX Runtime: exported with the members' outputs, no TensorFlow
            self.is_ensemble, self._input_shape = bundle.model.n_outputs_total > 1, tuple(bundle.model.input_shape[1:])
            model = bundle.model
            self._call = (lambda x: model(x)) if self.is_ensemble else (lambda x: model(x)[0])
            return
        self._input_shape = tuple(bundle.model.input_shape[1:])
        self._call, self.is_ensemble = compiled_prediction(bundle.model, self._input_shape)

    def interval_bounds(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper interval bounds around predictions ``values`` (n, targets); the bundle must have intervals."""
        return values - self._half_widths, values + self._half_widths

    def warm_up(self) -> None:
        """Trace and run the graph once so the first real batch pays no compile cost."""
        for size in PADDED_BATCH_SIZES:
            self._call(np.zeros((size, *self._input_shape), np.float32))

    def with_transfers(self, transfers: dict) -> Predictor:
        """The same loaded model (sharing its compiled graph) applying ``transfers`` (analyzer -> CalibrationTransfer)
        to those analyzers' spectra; an SBC fitted for another version is left out."""
        applying = {a: t for a, t in transfers.items() if t.applies_to(self.version)}
        if applying.keys() == self.transfers.keys() and all(applying[a] is self.transfers[a] for a in applying):
            return self  # nothing changes: keep the very object (a rollback finds its warm predictor again)
        view = copy.copy(self)
        view.transfers = applying
        return view

    def predict(self, spectra: np.ndarray, analyzers: Sequence[str] | None = None) -> BatchPrediction:
        """Predict raw spectra on the bundle's input grid, shape (n, grid.count).

        Degenerate spectra (see ``SpectralPreprocessor.screen_transform``) get NaN and a reason in
        ``degenerate``; spectra whose EMSC coefficients lie outside the training range are flagged outlier.
        With ``analyzers`` (one id per spectrum), an analyzer's calibration transfer standardises its spectra before
        the preprocessing and corrects its predictions after the model; ``transfer`` names what was applied.
        """
        started = time.perf_counter()
        transferred, spectra = self._standardise(spectra, analyzers)
        screened = self.bundle.preprocessor.screen_transform(spectra)
        features = screened.features
        t2, q = self.bundle.domain.statistics(features)
        prepared = time.perf_counter()
        n = features.shape[0]
        padded = np.zeros((padded_size(n), features.shape[1]), np.float32)
        padded[:n] = features
        outputs = self._call(padded.reshape((-1, *self._input_shape)))
        if self.is_ensemble:  # the ensemble's average (the deployed output) and each member's
            mean, *members = (np.asarray(o).reshape(padded.shape[0], -1)[:n] for o in outputs)
            spread = np.std(np.stack(members), axis=0).astype(np.float64) * self._y_scale
        else:
            mean = np.asarray(outputs).reshape(padded.shape[0], -1)[:n]  # a TensorFlow tensor or a NumPy array
            spread = np.full(mean.shape, np.nan)
        finished = time.perf_counter()
        values = (mean * self._y_scale + self._y_mean).astype(np.float64)
        for analyzer, rows in transferred.items():
            values[rows] = self.transfers[analyzer].correct(values[rows], self.targets)
        values[screened.degenerate] = np.nan
        flags = np.where(screened.outside, "outlier", self.bundle.domain.flags(t2, q))
        return BatchPrediction(
            values=values,
            spread=spread,
            hotelling_t2=t2,
            q_residual=q,
            flags=flags,
            degenerate=screened.details,
            preprocess_seconds=prepared - started,
            inference_seconds=finished - prepared,
            transfer=self._transfer_labels(n, transferred),
        )

    def _standardise(self, spectra: np.ndarray, analyzers: Sequence[str] | None) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Rows per analyzer that has a transfer, and the spectra with theirs standardised (one matrix product each)."""
        if not self.transfers or analyzers is None:
            return {}, spectra
        ids = np.asarray(analyzers, dtype=object)
        transferred = {a: rows for a in self.transfers if (rows := np.flatnonzero(ids == a)).size}
        if not transferred:
            return {}, spectra
        spectra = np.array(spectra, dtype=np.float64)
        with np.errstate(all="ignore"):  # hostile values overflow here and are screened as degenerate next
            for analyzer, rows in transferred.items():
                spectra[rows] = self.transfers[analyzer].standardise(spectra[rows])
        return transferred, spectra

    def _transfer_labels(self, n: int, transferred: dict[str, np.ndarray]) -> np.ndarray:
        labels = np.full(n, "", dtype=object)
        for analyzer, rows in transferred.items():
            labels[rows] = self.transfers[analyzer].label
        return labels
