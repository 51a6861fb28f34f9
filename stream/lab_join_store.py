"""Online model monitoring: join predictions with late lab reference values by sample id.

The batch consumer reads the reference topic together with the spectra topic in one
consumer group. Both are keyed by analyzer id with the same partition count, and Kafka's
range assignor gives one worker the same partition numbers of both, so a sample's
prediction and its lab value meet in the same process. Predictions with a sample id are
kept for ``retention_seconds`` (bounded in count); a reference that arrives first waits
for its prediction the same way. Every joined pair updates rolling RMSEP, bias and outlier
fraction per analyzer and target, and is emitted for the trainer (the labelled topic) with every target
the lab measured and the model predicts.

A sample id is joined once: after its pair, spectra and lab values with that id are ignored for the
retention time, which makes a replayed batch harmless. Every entry remembers the partition it came
from, and every change is kept for the changelog (``take_changes``) that ``join_state`` writes to
Kafka and restores from when partitions are assigned.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from nirstream.core.chemometrics.figures_of_merit import rmse
from nirstream.core.messages.labelled import labelled_pair
from nirstream.core.messages.reference import ReferenceMessage


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


@dataclass(frozen=True, slots=True)
class JoinedSample:
    """A sample whose pair went out (the prediction's message id): its id is not joined again."""

    message_id: str


class StateChange(NamedTuple):
    """One change of the join state, as the changelog records it (``join_state``)."""

    partition: int  # of the spectrum or lab value it came from
    sample_id: str
    entry: PendingPrediction | ReferenceMessage | JoinedSample | None  # None: forgotten (expired or over capacity)
    at: float  # when it was stored: restore drops it once older than the retention


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
    """Time-ordered store that forgets entries older than ``retention`` seconds or beyond ``capacity``. Each entry
    remembers its partition, so that a revoked partition's entries can be dropped."""

    def __init__(self, retention: float, capacity: int):
        self.retention, self.capacity = retention, capacity
        self._entries: OrderedDict = OrderedDict()  # key -> (value, stored_at, partition)

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self):
        return iter(self._entries)

    def __contains__(self, key) -> bool:
        return key in self._entries

    def put(self, key, value, now: float, partition: int = 0) -> list[tuple]:
        """Store ``value``; return (key, partition) of the entries this forgot: over capacity or expired."""
        self._entries[key] = (value, now, partition)
        self._entries.move_to_end(key)
        forgotten = []
        while len(self._entries) > self.capacity:
            old, (_, _, old_partition) = self._entries.popitem(last=False)
            forgotten.append((old, old_partition))
        return forgotten + self.expire(now)

    def pop(self, key) -> tuple | None:
        """The value stored under ``key`` and its partition (removing it), or None."""
        entry = self._entries.pop(key, None)
        return None if entry is None else (entry[0], entry[2])

    def expire(self, now: float) -> list[tuple]:
        """Forget the entries older than the retention; return their (key, partition)."""
        forgotten = []
        while self._entries:
            key, (_, stored_at, partition) = next(iter(self._entries.items()))
            if now - stored_at <= self.retention:
                break
            del self._entries[key]
            forgotten.append((key, partition))
        return forgotten

    def drop_partitions(self, partitions: set[int]) -> int:
        """Forget every entry of ``partitions``; return how many."""
        before = len(self._entries)
        self._entries = OrderedDict((k, e) for k, e in self._entries.items() if e[2] not in partitions)
        return before - len(self._entries)

    def merge(self, items: Iterable[tuple], now: float) -> None:
        """Add (key, value, stored_at, partition) items (restored ones), keeping time order and the bounds."""
        merged = sorted([(k, *e) for k, e in self._entries.items()] + list(items), key=lambda item: item[2])
        self._entries = OrderedDict((k, (v, at, p)) for k, v, at, p in merged[-self.capacity:])
        self.expire(now)


class OnlineMonitor:
    def __init__(self, retention_seconds: float = 6 * 3600, capacity: int = 20_000, rmsep_window: int = 100, flag_window: int = 200):
        self.predictions = _ExpiringStore(retention_seconds, capacity)  # sample id -> PendingPrediction
        self.references = _ExpiringStore(retention_seconds, capacity)  # sample id -> ReferenceMessage
        self.joined = _ExpiringStore(retention_seconds, capacity)  # sample id -> JoinedSample
        self.stats: dict[str, AnalyzerStats] = {}
        self._rmsep_window, self._flag_window = rmsep_window, flag_window
        self._changes: dict[tuple[int, str], StateChange] = {}  # since the last take_changes, the last per sample

    def analyzer(self, analyzer_id: str) -> AnalyzerStats:
        if analyzer_id not in self.stats:
            self.stats[analyzer_id] = AnalyzerStats(self._rmsep_window, {}, deque(maxlen=self._flag_window))
        return self.stats[analyzer_id]

    def add_flags(self, analyzers: list[str], flags) -> None:
        for analyzer_id, flag in zip(analyzers, flags, strict=True):
            self.analyzer(analyzer_id).flags.append(str(flag))

    def add_prediction(self, sample_id: str, pending: PendingPrediction, partition: int = 0) -> dict | None:
        """Remember a prediction; return the labelled pair if its reference came first."""
        if self._joined_already(sample_id, pending.at):
            return None
        found = self.references.pop(sample_id)
        if found is not None:
            reference, stored_in = found
            return self._join(sample_id, pending, reference, stored_in, pending.at)
        self._store(self.predictions, sample_id, pending, pending.at, partition)
        return None

    def add_reference(self, reference: ReferenceMessage, now: float | None = None, partition: int = 0) -> dict | None:
        """Join a lab value; return the labelled pair, or None while its prediction is not here yet."""
        now = time.time() if now is None else now
        if self._joined_already(reference.sample_id, now):
            return None
        found = self.predictions.pop(reference.sample_id)
        if found is None:
            self._store(self.references, reference.sample_id, reference, now, partition)
            return None
        pending, stored_in = found
        return self._join(reference.sample_id, pending, reference, stored_in, now)

    def take_changes(self) -> list[StateChange]:
        """The state changes since the last call, the last one per sample id: what the changelog must record."""
        changes, self._changes = list(self._changes.values()), {}
        return changes

    def drop_partitions(self, partitions: set[int]) -> int:
        """Forget what came from ``partitions`` (revoked: another worker restores it); return how many entries."""
        return sum(store.drop_partitions(partitions) for store in (self.predictions, self.references, self.joined))

    def restore(self, entries: Iterable[StateChange], now: float | None = None) -> None:
        """Add entries read back from the changelog (``join_state.fold``) to the stores."""
        now = time.time() if now is None else now
        by_kind = defaultdict(list)
        for partition, sample_id, entry, at in entries:
            by_kind[type(entry)].append((sample_id, entry, at, partition))
        for kind, store in ((PendingPrediction, self.predictions), (ReferenceMessage, self.references),
                            (JoinedSample, self.joined)):
            if by_kind[kind]:
                store.merge(by_kind[kind], now)

    def _joined_already(self, sample_id: str, now: float) -> bool:
        """True if ``sample_id``'s pair went out within the retention: a replay, or a rescan of a joined sample."""
        self._forgotten(self.joined.expire(now), now)
        return sample_id in self.joined

    def _join(self, sample_id: str, pending: PendingPrediction, reference: ReferenceMessage, partition: int,
              now: float) -> dict | None:
        self._store(self.joined, sample_id, JoinedSample(pending.message_id), now, partition)
        return self._pair(sample_id, pending, reference)

    def _store(self, store: _ExpiringStore, sample_id: str, entry, at: float, partition: int) -> None:
        forgotten = store.put(sample_id, entry, at, partition)
        self._changes[partition, sample_id] = StateChange(partition, sample_id, entry, at)
        self._forgotten(forgotten, at)

    def _forgotten(self, forgotten: list[tuple], now: float) -> None:
        for sample_id, partition in forgotten:
            self._changes[partition, sample_id] = StateChange(partition, sample_id, None, now)

    def _pair(self, sample_id: str, pending: PendingPrediction, reference: ReferenceMessage) -> dict | None:
        """A ``labelled_pair`` (``messages.labelled``) of what both hold, its errors added to the statistics."""
        targets = [t for t in pending.predicted if t in reference.values]
        if not targets:
            return None  # the lab measured nothing this model predicts
        pair = labelled_pair(sample_id=sample_id, analyzer_id=pending.analyzer_id, message_id=pending.message_id,
                             model_version=pending.model_version, predicted={t: pending.predicted[t] for t in targets},
                             reference={t: reference.values[t] for t in targets}, flag=pending.flag,
                             measured_at=reference.measured_at, grid=pending.grid, values=pending.values)
        stats = self.analyzer(pending.analyzer_id)
        for target, error in pair["error"].items():
            stats.add_error(target, error)
        return pair
