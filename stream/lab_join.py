"""Join a batch's predictions and the lab values that arrived with it: labelled pairs to publish, dead letters
for lab values that are invalid, implausible or (joined by time) without a spectrum in their window, and the
join-state changelog records the batch must write before its offsets are committed (``join_state``). Pure apart
from the join store it is given."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from nirstream.core.errors import RejectReason
from nirstream.core.messages.labelled import encode_labelled
from nirstream.core.messages.reference import decode_reference
from nirstream.core.settings import TopicNames
from nirstream.core.serving.predictor import Predictor
from nirstream.stream.batch_processing import BatchResult, InboundRecord, Rejections, describe_error
from nirstream.stream.join_changelog import ChangelogRecord, encode_change
from nirstream.stream.lab_join_store import JoinedSample, OnlineMonitor, PendingPrediction, UnmatchedReference, WindowSpectrum


@dataclass
class LabJoinResult(Rejections):
    """Labelled pairs to publish, and (inherited) the dead letters of refused lab values."""

    labelled: list[tuple[bytes, bytes]] = field(default_factory=list)  # (analyzer id, LabelledPair)
    references_accepted: int = 0
    state_records: list[ChangelogRecord] = field(default_factory=list)  # waiting entries and tombstones
    joined_records: list[ChangelogRecord] = field(default_factory=list)  # written only once the pairs are acknowledged


def join_lab_values(predicted: BatchResult, predictor: Predictor, references: list[InboundRecord], monitor: OnlineMonitor,
                    worker: str, now: float | None = None, reference_topic: str = TopicNames().reference) -> LabJoinResult:
    """Feed the batch's predictions and lab values to ``monitor``; return the pairs it completed, the refusals and
    the changelog records (each waiting prediction's in the partition its spectrum was read from). A spectrum with a
    sample id waits for its lab value by that id; one without is kept for the join by sampling time when its
    analyzer is one of ``monitor.time_analyzers``."""
    now = time.time() if now is None else now
    joined = LabJoinResult()
    pairs = []
    monitor.add_flags(predicted.analyzers, predicted.flags)
    for spectrum, values, flag, partition in zip(predicted.accepted, predicted.values, predicted.flags, predicted.partitions,
                                                 strict=True):
        header = spectrum.header
        by_time = header.sample_id is None
        if by_time and not monitor.keeps_window(header.analyzer_id):
            continue
        pending = (WindowSpectrum if by_time else PendingPrediction)(
            header.analyzer_id, header.message_id, predictor.version, dict(zip(predictor.targets, values.tolist(), strict=True)),
            str(flag), header.grid.model_dump(), spectrum.values.astype(np.float32), now, header.timestamp.timestamp())
        if by_time:
            monitor.add_window_spectrum(pending, partition)
        else:
            pairs.append(monitor.add_prediction(header.sample_id, pending, partition))
    for record in references:
        try:
            pairs.append(_join_reference(record, predictor, monitor, joined, worker, now))
        except Exception as exc:  # noqa: BLE001 - nothing a lab system sends may stop the worker
            joined.reject(record, RejectReason.PROCESSING_ERROR, describe_error(exc), worker)
    completed, unmatched = monitor.complete_time_joins(now)
    pairs += completed
    for partition, reference, detail in unmatched:  # it waited: its offset is long committed, its content is kept
        record = InboundRecord(reference_topic, partition, -1, reference.analyzer_id.encode(),
                               reference.model_dump_json(exclude_none=True).encode())
        joined.reject(record, RejectReason.UNMATCHED_REFERENCE, f"{reference.join_key}: {detail}", worker)
    joined.labelled = [encode_labelled(p) for p in pairs if p]
    for change in monitor.take_changes():
        (joined.joined_records if isinstance(change.entry, JoinedSample) else joined.state_records).append(encode_change(change))
    return joined


def _join_reference(record: InboundRecord, predictor: Predictor, monitor: OnlineMonitor, joined: LabJoinResult,
                    worker: str, now: float) -> dict | None:
    """Validate one lab value and join it; dead-letter it when invalid or implausible."""
    try:
        reference = decode_reference(record.value)
    except ValueError as exc:
        joined.reject(record, RejectReason.INVALID_REFERENCE, str(exc)[:500], worker)
        return None
    implausible = [f"{target}={lab:g} (plausible {low:g} to {high:g})"
                   for target, (low, high) in predictor.reference_bounds.items()
                   if (lab := reference.values.get(target)) is not None and not low <= lab <= high]
    if implausible:
        detail = (f"lab value {', '.join(implausible)} is far outside the model's training targets: "
                  f"kept out of RMSEP, bias and retraining")
        joined.reject(record, RejectReason.IMPLAUSIBLE_REFERENCE, detail, worker)
        return None
    try:
        pair = monitor.add_reference(reference, now, record.partition)
    except UnmatchedReference as exc:
        joined.reject(record, RejectReason.UNMATCHED_REFERENCE, f"{reference.join_key}: {exc}", worker)
        return None
    joined.references_accepted += 1
    return pair
