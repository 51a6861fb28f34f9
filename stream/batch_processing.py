"""One micro-batch: decode and validate every message, one EMSC + model call, encode the results.

Pure (no Kafka): records in, messages out, so the same code runs in the worker, the
benchmark and the unit tests.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from nirstream.core.messages.codec import Spectrum, decode_unchecked_values
from nirstream.core.errors import RejectReason, SpectrumRejected
from nirstream.core.messages.dead_letter import encode_dead_letter
from nirstream.core.messages.limits import MAX_MESSAGE_BYTES
from nirstream.core.messages.prediction import PredictionEncoder
from nirstream.core.serving.predictor import BatchPrediction, Predictor
from nirstream.core.messages.spectrum_checks import non_finite_detail, non_finite_rows, saturated_rows

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class InboundRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    received_at: float = 0.0  # time.time() when the worker read it


@dataclass(frozen=True)
class BatchPolicy:
    max_message_bytes: int = MAX_MESSAGE_BYTES
    saturation_limit: float | None = None
    known_analyzers: frozenset[str] | None = None
    worker_name: str = ""


@dataclass
class Rejections:
    """Dead letters with their reasons: what a batch's spectra, or its lab values, could not become."""

    dead_letters: list[tuple[bytes | None, bytes]] = field(default_factory=list)
    reasons: Counter = field(default_factory=Counter)

    def reject(self, record: InboundRecord, reason: RejectReason, detail: str, worker: str) -> None:
        """Dead-letter ``record`` with its reason."""
        self.dead_letters.append((record.key, dead_letter(record, reason, detail, worker)))
        self.reasons[reason.value] += 1


@dataclass
class BatchResult(Rejections):
    predictions: list[tuple[bytes | None, bytes]] = field(default_factory=list)
    # parallel to predictions, for metrics
    values: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))  # (n, k): one column per target
    flags: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=object))
    spectrum_times: np.ndarray = field(default_factory=lambda: np.empty(0))
    accepted: list[Spectrum] = field(default_factory=list)  # parallel to predictions: ids, grid, values
    partitions: list[int] = field(default_factory=list)  # parallel to predictions: the partition each spectrum came from
    preprocess_seconds: float = 0.0
    inference_seconds: float = 0.0
    isolations: int = 0  # failed model calls split to isolate the spectra that made them fail

    def merge(self, other: BatchResult) -> None:
        """Append another result's outcomes (used when a batch is processed record by record)."""
        self.predictions += other.predictions
        self.dead_letters += other.dead_letters
        self.reasons.update(other.reasons)
        self.accepted += other.accepted
        self.partitions += other.partitions
        self.values = np.concatenate([self.values, other.values]) if len(self.values) else other.values
        self.flags = np.concatenate([self.flags, other.flags]).astype(object)
        self.spectrum_times = np.concatenate([self.spectrum_times, other.spectrum_times])
        self.isolations += other.isolations

    @property
    def analyzers(self) -> list[str]:
        """Analyzer id of each prediction, in order."""
        return [spectrum.header.analyzer_id for spectrum in self.accepted]


def dead_letter(record: InboundRecord, reason: RejectReason, detail: str, worker: str) -> bytes:
    """The dead letter of ``record`` (``messages.dead_letter``): always small enough to publish."""
    return encode_dead_letter(reason, detail, source_topic=record.topic, source_partition=record.partition,
                              source_offset=record.offset, key=record.key, original=record.value, worker=worker)


def describe_error(exc: BaseException) -> str:
    """An exception as a dead letter's detail: its type and message, bounded."""
    return f"{type(exc).__name__}: {exc}"[:1000]


def _check(spectrum: Spectrum, predictor: Predictor, policy: BatchPolicy) -> None:
    header = spectrum.header
    if policy.known_analyzers is not None and header.analyzer_id not in policy.known_analyzers:
        raise SpectrumRejected(RejectReason.UNKNOWN_ANALYZER, f"analyzer {header.analyzer_id!r} is not configured")
    header.grid.require_match(predictor.grid)


def _decode_all(records: list[InboundRecord], predictor: Predictor, policy: BatchPolicy,
                result: BatchResult) -> tuple[list, np.ndarray]:
    """The batch's usable spectra as (record, Spectrum) pairs and their values as one float64 matrix (each
    Spectrum's values are a row of it); the rest dead-lettered. Values are checked (finite, not saturated) once per
    batch, not per message."""
    decoded: list[tuple[InboundRecord, Spectrum]] = []
    for record in records:
        try:
            spectrum = decode_unchecked_values(record.value, policy.max_message_bytes)
            _check(spectrum, predictor, policy)
            decoded.append((record, spectrum))
        except SpectrumRejected as rejection:
            result.reject(record, rejection.reason, rejection.detail, policy.worker_name)
        except Exception as exc:  # noqa: BLE001 - nothing a producer sends may stop the worker
            result.reject(record, RejectReason.PROCESSING_ERROR, f"decoding failed: {describe_error(exc)}", policy.worker_name)
    if not decoded:
        return [], np.empty((0, predictor.grid.count))
    matrix = np.array([s.values for _, s in decoded], dtype=np.float64)  # one copy: float32 views -> float64 rows
    bad = non_finite_rows(matrix)
    for i in np.flatnonzero(bad):
        result.reject(decoded[i][0], RejectReason.NON_FINITE, non_finite_detail(matrix[i]), policy.worker_name)
    if policy.saturation_limit is not None:
        saturated = ~bad & saturated_rows(matrix, policy.saturation_limit)
        detail = f"values reach the detector limit {policy.saturation_limit:g}"
        for i in np.flatnonzero(saturated):
            result.reject(decoded[i][0], RejectReason.SATURATED, detail, policy.worker_name)
        bad |= saturated
    if bad.any():
        decoded, matrix = [item for item, is_bad in zip(decoded, bad, strict=True) if not is_bad], matrix[~bad]
    return [(record, Spectrum(spectrum.header, row)) for (record, spectrum), row in zip(decoded, matrix, strict=True)], matrix


def _predict_isolating(accepted: list, values: np.ndarray, predictor: Predictor, result: BatchResult,
                       worker: str) -> tuple[list, BatchPrediction | None]:
    """One model call for the batch; if it fails, split it in halves until each failing spectrum is alone.

    Returns the spectra that were predicted and their predictions (rows in the same order).
    Padding to fixed batch sizes keeps every spectrum's prediction identical however it is split.
    """
    try:
        return accepted, predictor.predict(values, [s.header.analyzer_id for _, s in accepted])
    except Exception as exc:  # noqa: BLE001 - isolate the culprit, predict the rest
        if len(accepted) == 1:
            result.reject(accepted[0][0], RejectReason.PROCESSING_ERROR, f"prediction failed: {describe_error(exc)}", worker)
            return [], None
        result.isolations += 1
        log.warning("a batch of %d failed (%s); isolating the culprit", len(accepted), describe_error(exc))
    middle = len(accepted) // 2
    kept, parts = [], []
    for half, half_values in ((accepted[:middle], values[:middle]), (accepted[middle:], values[middle:])):
        half_kept, half_batch = _predict_isolating(half, half_values, predictor, result, worker)
        if half_batch is not None:
            kept.extend(half_kept)
            parts.append(half_batch)
    return (kept, BatchPrediction.concatenate(parts)) if parts else ([], None)


def _drop_unpredictable(accepted: list, batch: BatchPrediction, result: BatchResult, worker: str) -> tuple[list, BatchPrediction]:
    """Dead-letter degenerate spectra and those the model gives no finite number for."""
    degenerate = batch.degenerate != ""
    finite = np.isfinite(batch.values).all(axis=1) & np.isfinite(batch.hotelling_t2) & np.isfinite(batch.q_residual)
    for i in np.flatnonzero(degenerate | ~finite):
        if degenerate[i]:
            result.reject(accepted[i][0], RejectReason.DEGENERATE, batch.degenerate[i], worker)
        else:
            # Finite but absurd input (e.g. 1e30 from a corrupted reading) overflows the model: no number to publish.
            result.reject(accepted[i][0], RejectReason.NON_FINITE,
                          "the model gives no finite prediction: values far outside anything it was trained on", worker)
    keep = ~degenerate & finite
    if keep.all():
        return accepted, batch
    return [item for item, k in zip(accepted, keep, strict=True) if k], batch.keep(keep)


def _encode_predictions(accepted: list, batch: BatchPrediction, predictor: Predictor, predicted_at: datetime,
                        preprocess_seconds: float, inference_seconds: float, started_wall: float) -> list[bytes | Exception]:
    """The batch's ``PredictionMessage``s (``messages.prediction``), or the error that stopped one."""
    limits = predictor.bundle.domain.limits_
    encoder = PredictionEncoder(
        model_version=predictor.version, targets=predictor.targets, units=predictor.units, predicted_at=predicted_at,
        t2_limits=(limits["t2_95"], limits["t2_99"]), q_limits=(limits["q_95"], limits["q_99"]),
        interval_coverage=predictor.intervals.coverage if predictor.intervals is not None else None,
        batch_size=len(accepted), preprocess_seconds=preprocess_seconds, inference_seconds=inference_seconds)
    lows, highs = ([b.tolist() for b in predictor.interval_bounds(batch.values)] if predictor.intervals is not None
                   else (None, None))
    return encoder.encode(
        [spectrum.header for _, spectrum in accepted], batch.values.tolist(), hotelling_t2=batch.hotelling_t2.tolist(),
        q_residual=batch.q_residual.tolist(), flags=[str(f) for f in batch.flags],
        queue_seconds=[max(0.0, started_wall - (record.received_at or started_wall)) for record, _ in accepted],
        lows=lows, highs=highs, spreads=batch.spread.tolist() if predictor.is_ensemble else None,
        transfers=batch.transfer)


def process_batch(records: list[InboundRecord], predictor: Predictor, policy: BatchPolicy) -> BatchResult:
    """Turn a batch of raw records into encoded predictions and dead letters (one per record). Never raises:
    if a step fails outside the guarded places (a bug), each record is processed alone and only the ones
    that still fail become ``processing_error`` dead letters."""
    try:
        return _process(records, predictor, policy)
    except Exception as exc:  # noqa: BLE001 - the last line of defence of the worker's loop
        log.exception("batch of %d failed as a whole; processing its records one by one", len(records))
        merged = BatchResult(isolations=1)
        for record in records:
            try:
                merged.merge(_process([record], predictor, policy))
            except Exception as single:  # noqa: BLE001
                merged.reject(record, RejectReason.PROCESSING_ERROR, f"{describe_error(single)} (batch: {describe_error(exc)})",
                              policy.worker_name)
        return merged


def _process(records: list[InboundRecord], predictor: Predictor, policy: BatchPolicy) -> BatchResult:
    result = BatchResult()
    started, started_wall = time.perf_counter(), time.time()
    accepted, values = _decode_all(records, predictor, policy, result)
    result.preprocess_seconds = time.perf_counter() - started
    if not accepted:
        return result
    decoded = time.perf_counter()
    accepted, batch = _predict_isolating(accepted, values, predictor, result, policy.worker_name)
    if batch is None:
        return result
    accepted, batch = _drop_unpredictable(accepted, batch, result, policy.worker_name)
    if not accepted:
        return result
    result.preprocess_seconds = decoded - started + batch.preprocess_seconds
    result.inference_seconds = batch.inference_seconds
    predicted_at = datetime.now(UTC)
    messages = _encode_predictions(accepted, batch, predictor, predicted_at, result.preprocess_seconds,
                                   result.inference_seconds, started_wall)
    encoded = np.zeros(len(accepted), dtype=bool)
    for i, ((record, _), message) in enumerate(zip(accepted, messages, strict=True)):
        if isinstance(message, Exception):
            result.reject(record, RejectReason.PROCESSING_ERROR, f"encoding the prediction failed: {describe_error(message)}",
                          policy.worker_name)
        else:
            result.predictions.append((record.key, message))
            encoded[i] = True
    result.values, result.flags = batch.values[encoded], batch.flags[encoded]
    result.accepted = [spectrum for (_, spectrum), ok in zip(accepted, encoded, strict=True) if ok]
    result.partitions = [record.partition for (record, _), ok in zip(accepted, encoded, strict=True) if ok]
    result.spectrum_times = np.array([s.header.timestamp.timestamp() for s in result.accepted])
    return result
