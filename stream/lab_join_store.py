"""Online model monitoring: join predictions with late lab reference values, by sample id or by sampling time.

The batch consumer reads the reference topic together with the spectra topic in one
consumer group. Both are keyed by analyzer id with the same partition count, and Kafka's
range assignor gives one worker the same partition numbers of both, so a sample's
prediction and its lab value meet in the same process. Predictions with a sample id are
kept for ``retention_seconds`` (bounded in count); a reference that arrives first waits
for its prediction the same way. Every joined pair updates rolling RMSEP, bias and outlier
fraction per analyzer and target, and is emitted for the trainer (the labelled topic) with every target
the lab measured and the model predicts.

On continuous processes spectra carry no sample id: a lab value names its analyzer and sampling time instead.
The spectra without sample id of the analyzers in ``time_analyzers`` are kept per analyzer (``WindowSpectrum``,
at most ``time_capacity`` each, for the retention time); a lab value is joined with them once its window
(``time_window`` seconds either side of the sampling time) is closed, i.e. a spectrum acquired after the window
has been kept, and waits until then (``time_window`` holds the window logic). Its key, ``analyzer@sampling
time``, stands for its sample id.

A sample (id or key) is joined once: after its pair, spectra and lab values with that id are ignored for the
retention time, which makes a replayed batch harmless. Every entry remembers the partition it came
from, and every change is kept for the changelog (``take_changes``) that ``join_state`` writes to
Kafka and restores from when partitions are assigned.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple

import numpy as np

from nirstream.core.chemometrics.figures_of_merit import rmse
from nirstream.core.messages.labelled import labelled_pair
from nirstream.core.messages.reference import ReferenceMessage
from nirstream.stream.time_window import TimeJoinMode, choose, describe_no_match, in_window, window_closed

SPECTRUM_KEY = "\x1espectrum:"  # + message id: a kept spectrum's changelog key, apart from any sample id


@dataclass(slots=True)
class PendingPrediction:
    analyzer_id: str
    message_id: str
    model_version: str
    predicted: dict[str, float]  # target -> predicted value
    flag: str
    grid: dict
    values: np.ndarray  # the spectrum, float32, for retraining
    at: float  # when the worker stored it (the retention's clock)
    acquired_at: float | None = None  # the spectrum's timestamp (epoch seconds)


@dataclass(slots=True)
class WindowSpectrum(PendingPrediction):
    """A prediction of a spectrum without sample id, kept for lab values joined by sampling time."""


class UnmatchedReference(ValueError):
    """A lab value joined by time whose window holds no spectrum of its analyzer (the message says why)."""


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

    def values(self) -> Iterator:
        return (entry[0] for entry in self._entries.values())

    def get(self, key) -> tuple | None:
        """The value stored under ``key`` and its partition, or None."""
        entry = self._entries.get(key)
        return None if entry is None else (entry[0], entry[2])

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
    def __init__(self, retention_seconds: float = 6 * 3600, capacity: int = 20_000, rmsep_window: int = 100, flag_window: int = 200,
                 time_analyzers: Collection[str] = (), time_window: float = 300.0, time_mode: TimeJoinMode = "nearest",
                 time_capacity: int = 4320):
        self.predictions = _ExpiringStore(retention_seconds, capacity)  # sample id -> PendingPrediction
        self.references = _ExpiringStore(retention_seconds, capacity)  # sample id -> ReferenceMessage
        self.joined = _ExpiringStore(retention_seconds, capacity)  # sample id (or time key) -> JoinedSample
        self.window_spectra: dict[str, _ExpiringStore] = {}  # analyzer -> SPECTRUM_KEY + message id -> WindowSpectrum
        self.time_references = _ExpiringStore(retention_seconds, capacity)  # time key -> ReferenceMessage, window open
        self.time_analyzers, self.time_window, self.time_mode = frozenset(time_analyzers), time_window, time_mode
        self._retention, self._time_capacity = retention_seconds, time_capacity
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

    def keeps_window(self, analyzer_id: str) -> bool:
        """Whether this analyzer's spectra without sample id are kept for the join by sampling time."""
        return analyzer_id in self.time_analyzers or "*" in self.time_analyzers

    def add_window_spectrum(self, spectrum: WindowSpectrum, partition: int = 0) -> None:
        """Keep a spectrum without sample id (and its prediction) for lab values joined by sampling time."""
        self._store(self._window_store(spectrum.analyzer_id), SPECTRUM_KEY + spectrum.message_id, spectrum, spectrum.at,
                    partition)

    def add_reference(self, reference: ReferenceMessage, now: float | None = None, partition: int = 0) -> dict | None:
        """Join a lab value; return the labelled pair, or None while its prediction (or the end of its window) is not
        here yet. ``UnmatchedReference`` if it is joined by time and its closed window holds no spectrum."""
        now = time.time() if now is None else now
        if reference.sample_id is None:
            return self._add_timed_reference(reference, now, partition)
        if self._joined_already(reference.sample_id, now):
            return None
        found = self.predictions.pop(reference.sample_id)
        if found is None:
            self._store(self.references, reference.sample_id, reference, now, partition)
            return None
        pending, stored_in = found
        return self._join(reference.sample_id, pending, reference, stored_in, now)

    def complete_time_joins(self, now: float | None = None) -> tuple[list[dict | None], list[tuple[int, ReferenceMessage, str]]]:
        """Join the waiting lab values whose window closed since; return their pairs, and (partition, lab value, why)
        of those whose window holds no spectrum (forgotten). Also forgets kept spectra older than the retention."""
        now = time.time() if now is None else now
        self._forgotten(self.time_references.expire(now), now)
        for store in self.window_spectra.values():
            self._forgotten(store.expire(now), now)
        pairs, unmatched, newest = [], [], {}
        for key in list(self.time_references):
            reference, partition = self.time_references.get(key)
            analyzer = reference.analyzer_id
            if analyzer not in newest:
                newest[analyzer] = max((s.acquired_at for s in self._window_store(analyzer).values()), default=None)
            if not window_closed(newest[analyzer], reference.sampled_at.timestamp(), self.time_window):
                continue
            self.time_references.pop(key)
            try:
                pairs.append(self._join_by_time(key, reference, partition, now))
            except UnmatchedReference as exc:
                self._forgotten([(key, partition)], now)
                unmatched.append((partition, reference, str(exc)))
        return pairs, unmatched

    def take_changes(self) -> list[StateChange]:
        """The state changes since the last call, the last one per sample id: what the changelog must record."""
        changes, self._changes = list(self._changes.values()), {}
        return changes

    def drop_partitions(self, partitions: set[int]) -> int:
        """Forget what came from ``partitions`` (revoked: another worker restores it); return how many entries."""
        stores = (self.predictions, self.references, self.joined, self.time_references, *self.window_spectra.values())
        return sum(store.drop_partitions(partitions) for store in stores)

    def restore(self, entries: Iterable[StateChange], now: float | None = None) -> None:
        """Add entries read back from the changelog (``join_state.fold``) to the stores."""
        now = time.time() if now is None else now
        groups: dict[int, tuple[_ExpiringStore, list]] = {}
        for partition, sample_id, entry, at in entries:
            store = self._store_of(entry)
            groups.setdefault(id(store), (store, []))[1].append((sample_id, entry, at, partition))
        for store, items in groups.values():
            store.merge(items, now)

    def _store_of(self, entry) -> _ExpiringStore:
        """The store a restored entry goes back to."""
        if isinstance(entry, WindowSpectrum):
            return self._window_store(entry.analyzer_id)
        if isinstance(entry, PendingPrediction):
            return self.predictions
        if isinstance(entry, ReferenceMessage):
            return self.references if entry.sample_id is not None else self.time_references
        return self.joined

    def _window_store(self, analyzer_id: str) -> _ExpiringStore:
        if analyzer_id not in self.window_spectra:
            self.window_spectra[analyzer_id] = _ExpiringStore(self._retention, self._time_capacity)
        return self.window_spectra[analyzer_id]

    def _add_timed_reference(self, reference: ReferenceMessage, now: float, partition: int) -> dict | None:
        """A lab value without sample id: joined now if its window is closed, else kept until it is."""
        key = reference.join_key
        if self._joined_already(key, now):
            return None
        if not self.keeps_window(reference.analyzer_id):
            raise UnmatchedReference(f"the spectra of analyzer {reference.analyzer_id!r} are not kept for the join by "
                                     f"sampling time (setting time_join_analyzers)")
        newest = max((s.acquired_at for s in self._window_store(reference.analyzer_id).values()), default=None)
        if not window_closed(newest, reference.sampled_at.timestamp(), self.time_window):
            self._store(self.time_references, key, reference, now, partition)
            return None
        self.time_references.pop(key)  # a replayed lab value that waited
        return self._join_by_time(key, reference, partition, now)

    def _join_by_time(self, key: str, reference: ReferenceMessage, partition: int, now: float) -> dict | None:
        kept = list(self._window_store(reference.analyzer_id).values())
        sampled_at = reference.sampled_at.timestamp()
        window = in_window(kept, sampled_at, self.time_window)
        if not window:
            raise UnmatchedReference(describe_no_match(kept, sampled_at, self.time_window))
        chosen = choose(window, sampled_at, self.time_mode)
        spectrum = chosen.spectrum
        pending = PendingPrediction(spectrum.analyzer_id, key, spectrum.model_version, chosen.predicted, chosen.flag,
                                    spectrum.grid, chosen.values, now, chosen.acquired_at)
        self._store(self.joined, key, JoinedSample(key), now, partition)
        return self._pair(key, pending, reference, joined_by=f"time_{self.time_mode}", spectra_averaged=chosen.count)

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

    def _pair(self, sample_id: str, pending: PendingPrediction, reference: ReferenceMessage, joined_by: str = "sample_id",
              spectra_averaged: int = 1) -> dict | None:
        """A ``labelled_pair`` (``messages.labelled``) of what both hold, its errors added to the statistics."""
        targets = [t for t in pending.predicted if t in reference.values]
        if not targets:
            return None  # the lab measured nothing this model predicts
        pair = labelled_pair(sample_id=sample_id, analyzer_id=pending.analyzer_id, message_id=pending.message_id,
                             model_version=pending.model_version, predicted={t: pending.predicted[t] for t in targets},
                             reference={t: reference.values[t] for t in targets}, flag=pending.flag,
                             measured_at=reference.measured_at, grid=pending.grid, values=pending.values,
                             joined_by=joined_by, spectra_averaged=spectra_averaged, sampled_at=reference.sampled_at,
                             spectrum_at=None if pending.acquired_at is None else datetime.fromtimestamp(pending.acquired_at, UTC))
        stats = self.analyzer(pending.analyzer_id)
        for target, error in pair["error"].items():
            stats.add_error(target, error)
        return pair
