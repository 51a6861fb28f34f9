"""The lab join's changelog records (``join_state`` explains the changelog): one state change as a record and
back, and the live entries of a partition from its last record per key. Pure: no Kafka client here."""

from __future__ import annotations

import base64
import logging

import numpy as np
import orjson

from nirstream.core.messages.reference import ReferenceMessage
from nirstream.stream.lab_join_store import JoinedSample, PendingPrediction, StateChange, WindowSpectrum

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
_FLOAT32 = np.dtype("<f4")

# partition, key (sample id, time key, or SPECTRUM_KEY + message id), value (None: tombstone)
ChangelogRecord = tuple[int, bytes, bytes | None]
_PREDICTION_KINDS = {PendingPrediction: "prediction", WindowSpectrum: "spectrum"}


def encode_change(change: StateChange) -> ChangelogRecord:
    """The changelog record of one state change."""
    entry, key = change.entry, change.sample_id.encode()
    if entry is None:
        return change.partition, key, None
    body: dict = {"v": FORMAT_VERSION, "at": change.at}
    if isinstance(entry, PendingPrediction):
        body |= {"kind": _PREDICTION_KINDS[type(entry)], "acquired_at": entry.acquired_at, "analyzer_id": entry.analyzer_id,
                 "message_id": entry.message_id, "model_version": entry.model_version, "predicted": entry.predicted, "flag": entry.flag, "grid": entry.grid,
                 "values": base64.b64encode(np.ascontiguousarray(entry.values, _FLOAT32).tobytes()).decode()}
    elif isinstance(entry, ReferenceMessage):
        body |= {"kind": "reference", "reference": entry.model_dump(mode="json", exclude_none=True)}
    else:
        body |= {"kind": "joined", "message_id": entry.message_id}
    return change.partition, key, orjson.dumps(body)


def decode_change(partition: int, key: bytes, value: bytes | None) -> StateChange:
    """A changelog record as a state change; ValueError (or KeyError, TypeError) if it is not one."""
    sample_id = key.decode()
    if value is None:
        return StateChange(partition, sample_id, None, 0.0)
    body = orjson.loads(value)
    if body.get("v") != FORMAT_VERSION:
        raise ValueError(f"changelog format {body.get('v')!r}; this worker reads {FORMAT_VERSION}")
    at, kind = float(body["at"]), body["kind"]
    if kind in ("prediction", "spectrum"):
        values = np.frombuffer(base64.b64decode(body["values"], validate=True), _FLOAT32)
        # a kept spectrum needs its acquisition time (TypeError without it: skipped); a waiting prediction may lack it
        acquired_at = float(body["acquired_at"]) if kind == "spectrum" or body.get("acquired_at") is not None else None
        entry = (PendingPrediction if kind == "prediction" else WindowSpectrum)(
            body["analyzer_id"], body["message_id"], body["model_version"], {t: float(v) for t, v in body["predicted"].items()},
            body["flag"], body["grid"], values, at, acquired_at)
    elif kind == "reference":
        entry = ReferenceMessage.model_validate(body["reference"])
    elif kind == "joined":
        entry = JoinedSample(body["message_id"])
    else:
        raise ValueError(f"unknown changelog entry kind {kind!r}")
    return StateChange(partition, sample_id, entry, at)


def fold(partition: int, latest: dict[bytes, bytes | None], now: float, retention: float) -> list[StateChange]:
    """The live entries of one changelog partition from its last record per key: tombstones and entries older
    than ``retention`` left out, unreadable records skipped with a warning."""
    entries, unreadable = [], 0
    for key, value in latest.items():
        if value is None:
            continue
        try:
            change = decode_change(partition, key, value)
        except Exception as exc:  # noqa: BLE001 - any record (e.g. JSON that is not an object) is skipped, never fatal
            unreadable += 1
            last_error = exc
            continue
        if now - change.at <= retention:
            entries.append(change)
    if unreadable:
        log.warning("skipped %d unreadable lab-join record(s) in partition %d (last: %s)", unreadable, partition, last_error)
    return entries
