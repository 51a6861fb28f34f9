"""Batch prediction with a loaded bundle: preprocessing, one compiled model call, T²/Q flags.

The trainer evaluates through this class too, so offline and online numbers come from the
same code path.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from nirstream.core.bundle import ModelBundle


@dataclass(frozen=True)
class BatchPrediction:
    values: np.ndarray  # (n,) in the target's unit
    hotelling_t2: np.ndarray
    q_residual: np.ndarray
    flags: np.ndarray  # 'ok' | 'warning' | 'outlier'
    preprocess_seconds: float
    inference_seconds: float


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
        import tensorflow as tf

        self.bundle = bundle
        self.version = bundle.version
        meta = bundle.metadata
        self.target, self.unit, self.grid = meta.target, meta.unit, meta.input_grid
        self._y_mean, self._y_scale = meta.target_mean, meta.target_scale
        input_shape = tuple(bundle.model.input_shape[1:])
        model = bundle.model
        signature = [tf.TensorSpec((None, *input_shape), tf.float32)]
        self._input_shape = input_shape
        self._call = tf.function(lambda x: model(x, training=False), input_signature=signature, reduce_retracing=True)

    def warm_up(self) -> None:
        """Trace and run the graph once so the first real batch pays no compile cost."""
        for size in PADDED_BATCH_SIZES:
            self._call(np.zeros((size, *self._input_shape), np.float32))

    def predict(self, spectra: np.ndarray) -> BatchPrediction:
        """Predict raw spectra on the bundle's input grid, shape (n, grid.count)."""
        started = time.perf_counter()
        features = self.bundle.preprocessor.transform(spectra)
        t2, q = self.bundle.domain.statistics(features)
        prepared = time.perf_counter()
        n = features.shape[0]
        padded = np.zeros((padded_size(n), features.shape[1]), np.float32)
        padded[:n] = features
        raw = self._call(padded.reshape((-1, *self._input_shape))).numpy().reshape(-1)[:n]
        finished = time.perf_counter()
        return BatchPrediction(
            values=raw * self._y_scale + self._y_mean,
            hotelling_t2=t2,
            q_residual=q,
            flags=self.bundle.domain.flags(t2, q),
            preprocess_seconds=prepared - started,
            inference_seconds=finished - prepared,
        )
