"""Online model monitoring: join predictions with late lab reference values by sample id.

The batch consumer reads the reference topic together with the spectra topic in one
consumer group. Both are keyed by analyzer id with the same partition count, and Kafka's
range assignor gives one worker the same partition numbers of both, so a sample's
prediction and its lab value meet in the same process. Predictions with a sample id are
kept for ``retention_seconds`` (bounded in count); a reference that arrives first waits
for its prediction the same way. Every joined pair updates rolling RMSEP, bias and outlier
fraction per analyzer and target, and is emitted for the trainer (the labelled topic) with every target
the lab measured and the model predicts.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field

import numpy as np
import orjson

from nirstream.core.figures_of_merit import rmse
from nirstream.core.messages.common import SCHEMA_VERSION
from nirstream.core.messages.reference import ReferenceMessage


def encode_labelled(pair: dict) -> tuple[bytes, bytes]:
    """Key (analyzer id) and value of a labelled pair on the labelled topic."""
    return pair["analyzer_id"].encode(), orjson.dumps(pair, option=orjson.OPT_SERIALIZE_NUMPY)


@dataclass(slots=True)
class PendingPrediction:
    analyzer_id: str
    message_id: str
    model_version: str
    predicted: dict[str, float]  # target -> predicted value
    flag: str
    grid: dict
    values: np.ndarray  # the spectrum, float32, for retraining
    at: float


@dataclass
class AnalyzerStats:
    """The last joined errors of one analyzer, per target, and its last outlier flags."""

    window: int = 100
    errors: dict[str, deque] = field(default_factory=dict)  # target -> predicted - lab
    flags: deque = field(default_factory=lambda: deque(maxlen=200))

    def add_error(self, target: str, error: float) -> None:
        self.errors.setdefault(target, deque(maxlen=self.window)).append(error)

    def rmsep(self, target: str) -> float:
        errors = self.errors.get(target)
        return rmse(errors, 0.0) if errors else math.nan

    def bias(self, target: str) -> float:
        errors = self.errors.get(target)
        return sum(errors) / len(errors) if errors else math.nan

    @property
    def outlier_fraction(self) -> float:
        return sum(f != "ok" for f in self.flags) / len(self.flags) if self.flags else 0.0


class _ExpiringStore:
    """Insertion-ordered store that forgets entries older than ``retention`` seconds or beyond ``capacity``."""

    def __init__(self, retention: float, capacity: int):
        self.retention, self.capacity = retention, capacity
        self._entries: OrderedDict = OrderedDict()  # key -> (value, stored_at)

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self):
        return iter(self._entries)

    def put(self, key, value, now: float) -> None:
        self._entries[key] = (value, now)
        self._entries.move_to_end(key)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
        self.expire(now)

    def pop(self, key):
        """The value stored under ``key`` (removing it), or None."""
        entry = self._entries.pop(key, None)
        return None if entry is None else entry[0]

    def expire(self, now: float) -> None:
        while self._entries:
            _, stored_at = next(iter(self._entries.values()))
            if now - stored_at <= self.retention:
                break
            self._entries.popitem(last=False)


class OnlineMonitor:
    def __init__(self, retention_seconds: float = 6 * 3600, capacity: int = 20_000, rmsep_window: int = 100, flag_window: int = 200):
        self.predictions = _ExpiringStore(retention_seconds, capacity)
        self.references = _ExpiringStore(retention_seconds, capacity)
        self.stats: dict[str, AnalyzerStats] = {}
        self._rmsep_window, self._flag_window = rmsep_window, flag_window

    def analyzer(self, analyzer_id: str) -> AnalyzerStats:
        if analyzer_id not in self.stats:
            self.stats[analyzer_id] = AnalyzerStats(self._rmsep_window, {}, deque(maxlen=self._flag_window))
        return self.stats[analyzer_id]

    def add_flags(self, analyzers: list[str], flags) -> None:
        for analyzer_id, flag in zip(analyzers, flags, strict=True):
            self.analyzer(analyzer_id).flags.append(str(flag))

    def add_prediction(self, sample_id: str, pending: PendingPrediction) -> dict | None:
        """Remember a prediction; return the labelled pair if its reference came first."""
        reference = self.references.pop(sample_id)
        if reference is not None:
            return self._pair(sample_id, pending, reference)
        self.predictions.put(sample_id, pending, pending.at)
        return None

    def add_reference(self, reference: ReferenceMessage, now: float | None = None) -> dict | None:
        """Join a lab value; return the labelled pair, or None while its prediction is not here yet."""
        now = time.time() if now is None else now
        pending = self.predictions.pop(reference.sample_id)
        if pending is None:
            self.references.put(reference.sample_id, reference, now)
            return None
        return self._pair(reference.sample_id, pending, reference)

    def _pair(self, sample_id: str, pending: PendingPrediction, reference: ReferenceMessage) -> dict | None:
        """A ``LabelledPair`` as a dict (encoded fast by the consumer; tests/test_messages.py round-trips it)."""
        targets = [t for t in pending.predicted if t in reference.values]
        if not targets:
            return None  # the lab measured nothing this model predicts
        stats = self.analyzer(pending.analyzer_id)
        errors = {t: pending.predicted[t] - reference.values[t] for t in targets}
        for target, error in errors.items():
            stats.add_error(target, error)
        return {
            "schema_version": SCHEMA_VERSION,
            "sample_id": sample_id,
            "analyzer_id": pending.analyzer_id,
            "message_id": pending.message_id,
            "model_version": pending.model_version,
            "predicted": {t: pending.predicted[t] for t in targets},
            "reference": {t: reference.values[t] for t in targets},
            "error": errors,
            "flag": pending.flag,
            "measured_at": reference.measured_at,
            "grid": pending.grid,
            "values": pending.values,
        }
