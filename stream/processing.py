"""One micro-batch: decode and validate every message, one EMSC + model call, encode the results.

Pure (no Kafka): records in, messages out, so the same code runs in the worker, the
benchmark and the unit tests.
"""

from __future__ import annotations

import base64
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import orjson

from nirstream.core.codec import Spectrum, decode_spectrum
from nirstream.core.errors import RejectReason, SpectrumRejected
from nirstream.core.predictor import BatchPrediction, Predictor
from nirstream.core.validation import saturated_rows


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
    max_message_bytes: int = 1_000_000
    saturation_limit: float | None = None
    known_analyzers: frozenset[str] | None = None
    worker_name: str = ""


@dataclass
class BatchResult:
    predictions: list[tuple[bytes | None, bytes]] = field(default_factory=list)
    dead_letters: list[tuple[bytes | None, bytes]] = field(default_factory=list)
    reasons: Counter = field(default_factory=Counter)
    # parallel to predictions, for metrics
    values: np.ndarray = field(default_factory=lambda: np.empty(0))
    flags: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=object))
    spectrum_times: np.ndarray = field(default_factory=lambda: np.empty(0))
    accepted: list[Spectrum] = field(default_factory=list)  # parallel to predictions: ids, grid, values
    preprocess_seconds: float = 0.0
    inference_seconds: float = 0.0

    @property
    def analyzers(self) -> list[str]:
        """Analyzer id of each prediction, in order."""
        return [spectrum.header.analyzer_id for spectrum in self.accepted]


def dead_letter(record: InboundRecord, reason: RejectReason, detail: str, worker: str) -> bytes:
    return orjson.dumps(
        {
            "schema_version": 1,
            "reason": reason.value,
            "detail": detail,
            "source_topic": record.topic,
            "source_partition": record.partition,
            "source_offset": record.offset,
            "key": record.key.decode("utf-8", "replace") if record.key is not None else None,
            "original_base64": base64.b64encode(record.value or b"").decode(),
            "rejected_at": datetime.now(UTC),
            "worker": worker,
        }
    )


def _check(spectrum: Spectrum, predictor: Predictor, policy: BatchPolicy) -> None:
    header = spectrum.header
    if policy.known_analyzers is not None and header.analyzer_id not in policy.known_analyzers:
        raise SpectrumRejected(RejectReason.UNKNOWN_ANALYZER, f"analyzer {header.analyzer_id!r} is not configured")
    header.grid.require_match(predictor.grid)


def _reject_rows(accepted: list, bad: np.ndarray, reason: RejectReason, detail: str, result: BatchResult,
                 policy: BatchPolicy) -> list:
    """Dead-letter the accepted spectra marked ``bad``; return the others."""
    for (record, _), is_bad in zip(accepted, bad, strict=True):
        if is_bad:
            result.dead_letters.append((record.key, dead_letter(record, reason, detail, policy.worker_name)))
            result.reasons[reason.value] += 1
    return [item for item, is_bad in zip(accepted, bad, strict=True) if not is_bad]


def process_batch(records: list[InboundRecord], predictor: Predictor, policy: BatchPolicy) -> BatchResult:
    """Turn a batch of raw records into encoded predictions and dead letters (one per record)."""
    result = BatchResult()
    started, started_wall = time.perf_counter(), time.time()
    accepted: list[tuple[InboundRecord, Spectrum]] = []
    for record in records:
        try:
            spectrum = decode_spectrum(record.value, policy.max_message_bytes)
            _check(spectrum, predictor, policy)
            accepted.append((record, spectrum))
        except SpectrumRejected as rejection:
            result.dead_letters.append((record.key, dead_letter(record, rejection.reason, rejection.detail, policy.worker_name)))
            result.reasons[rejection.reason.value] += 1

    if accepted and policy.saturation_limit is not None:
        saturated = saturated_rows(np.vstack([s.values for _, s in accepted]), policy.saturation_limit)
        detail = f"values reach the detector limit {policy.saturation_limit:g}"
        accepted = _reject_rows(accepted, saturated, RejectReason.SATURATED, detail, result, policy)
    if not accepted:
        result.preprocess_seconds = time.perf_counter() - started
        return result

    decoded = time.perf_counter()
    batch = predictor.predict(np.vstack([s.values for _, s in accepted]))
    finite = np.isfinite(batch.values) & np.isfinite(batch.hotelling_t2) & np.isfinite(batch.q_residual)
    if not finite.all():
        # Finite but absurd input (e.g. 1e30 from a corrupted reading) overflows the model: no number to publish.
        detail = "the model gives no finite prediction: values far outside anything it was trained on"
        accepted = _reject_rows(accepted, ~finite, RejectReason.NON_FINITE, detail, result, policy)
        batch = BatchPrediction(*(getattr(batch, f)[finite] for f in ("values", "hotelling_t2", "q_residual", "flags")),
                                batch.preprocess_seconds, batch.inference_seconds)
        if not accepted:
            return result
    result.preprocess_seconds = decoded - started + batch.preprocess_seconds
    result.inference_seconds = batch.inference_seconds
    result.values, result.flags = batch.values, batch.flags
    result.accepted = [spectrum for _, spectrum in accepted]
    predicted_at = datetime.now(UTC)
    timings = {
        "batch_size": len(accepted),
        "preprocess_ms": round(result.preprocess_seconds * 1e3, 3),
        "inference_ms": round(result.inference_seconds * 1e3, 3),
    }
    limits = predictor.bundle.domain.limits_
    times = []
    for i, (record, spectrum) in enumerate(accepted):
        header = spectrum.header
        times.append(header.timestamp.timestamp())
        body = {
            "schema_version": 1,
            "analyzer_id": header.analyzer_id,
            "sequence": header.sequence,
            "message_id": header.message_id,
            "sample_id": header.sample_id,
            "batch_id": header.batch_id,
            "spectrum_timestamp": header.timestamp,
            "predicted_at": predicted_at,
            "model_version": predictor.version,
            "predictions": {predictor.target: float(batch.values[i])},
            "units": {predictor.target: predictor.unit},
            "outlier": {
                "hotelling_t2": float(batch.hotelling_t2[i]),
                "q_residual": float(batch.q_residual[i]),
                "t2_limit_95": limits["t2_95"],
                "t2_limit_99": limits["t2_99"],
                "q_limit_95": limits["q_95"],
                "q_limit_99": limits["q_99"],
                "flag": str(batch.flags[i]),
            },
            "timings": {**timings, "queue_ms": round(max(0.0, started_wall - (record.received_at or started_wall)) * 1e3, 3)},
        }
        result.predictions.append((record.key, orjson.dumps({k: v for k, v in body.items() if v is not None})))
    result.spectrum_times = np.array(times)
    return result
