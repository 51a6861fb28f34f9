"""The plant data store: every labelled pair the stream produced, kept once per message id, queryable.

The embedded default is SQLite (the standard library's ``sqlite3``: no server to run, one file in a volume,
atomic transactions that survive ``kill -9`` with the write-ahead log and ``synchronous=FULL``). The trainer
service stores a batch of pairs in one transaction and only then commits its Kafka offsets, so a crash
replays at most the uncommitted batch, and ``INSERT OR IGNORE`` on the message id (the primary key) makes the
replay store nothing twice: exactly one row per message id whatever is killed.

Only valid pairs enter: the ``LabelledPair`` schema already refuses non-finite lab values (the lab join
dead-letters implausible ones before they are published); the store also refuses spectra that are not finite
or do not match their grid, so a training set read back from it needs no second screen for those faults.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from nirstream.core.messages.common import WavelengthGrid
from nirstream.core.messages.labelled import LabelledPair

_SCHEMA = """
CREATE TABLE IF NOT EXISTS labelled_pairs (
    message_id    TEXT PRIMARY KEY,
    sample_id     TEXT NOT NULL,
    analyzer_id   TEXT NOT NULL,
    model_version TEXT NOT NULL,
    flag          TEXT NOT NULL,
    measured_at   TEXT NOT NULL,      -- when the lab sampled (ISO 8601, UTC)
    archived_at   TEXT NOT NULL,      -- when the store took it
    grid          TEXT NOT NULL,      -- WavelengthGrid as JSON
    reference     TEXT NOT NULL,      -- target -> lab value, JSON
    predicted     TEXT NOT NULL,      -- target -> the serving model's prediction, JSON
    spectrum      BLOB NOT NULL,      -- float64 little-endian, grid.count values
    spectrum_at   TEXT,               -- when the analyzer acquired the spectrum (the mean time of an averaged one)
    sampled_at    TEXT,               -- when the lab took the sample (pairs joined by sampling time)
    joined_by     TEXT,               -- sample_id, time_nearest or time_mean
    spectra_averaged INTEGER          -- spectra averaged into the spectrum (time_mean)
);
CREATE INDEX IF NOT EXISTS labelled_pairs_by_time ON labelled_pairs (measured_at);
"""
# Added after the first stores were created: ``PlantStore`` adds them to an older file (rows stored before read None).
_ADDED_COLUMNS = (("spectrum_at", "TEXT"), ("sampled_at", "TEXT"), ("joined_by", "TEXT"), ("spectra_averaged", "INTEGER"))
_COLUMNS = ("message_id, sample_id, analyzer_id, model_version, flag, measured_at, archived_at, grid, reference, predicted, "
            "spectrum, spectrum_at, sampled_at, joined_by, spectra_averaged")


@dataclass(frozen=True)
class StoredPair:
    """One archived pair, as read back."""

    message_id: str
    sample_id: str
    analyzer_id: str
    model_version: str
    flag: str
    measured_at: datetime
    archived_at: datetime
    grid: WavelengthGrid
    reference: dict[str, float]
    predicted: dict[str, float]
    spectrum: np.ndarray
    spectrum_at: datetime | None = None
    sampled_at: datetime | None = None
    joined_by: str | None = None  # None: stored before the store kept it (joined by sample id)
    spectra_averaged: int | None = None


@dataclass(frozen=True)
class StoreOutcome:
    """What one ``add`` did: rows new to the store, repeats of stored message ids, pairs refused (with why)."""

    stored: int
    repeats: int
    refused: list[tuple[str, str]]


class PlantStore:
    """SQLite-backed archive of labelled pairs (one file; created on first use)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # autocommit mode: transactions are opened explicitly in ``add``
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a committed batch is on disk before offsets are committed
        self._db.executescript(_SCHEMA)
        present = {row[1] for row in self._db.execute("PRAGMA table_info(labelled_pairs)")}
        for name, kind in _ADDED_COLUMNS:
            if name not in present:
                self._db.execute(f"ALTER TABLE labelled_pairs ADD COLUMN {name} {kind}")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> PlantStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def add(self, pairs: Iterable[LabelledPair], archived_at: datetime | None = None) -> StoreOutcome:
        """Store ``pairs`` in one transaction; a message id already stored is left as it was (a replay)."""
        archived = (archived_at or datetime.now(UTC)).isoformat()
        rows, refused = [], []
        for pair in pairs:
            values = np.asarray(pair.values, dtype=np.float64)
            if values.shape != (pair.grid.count,):
                refused.append((pair.message_id, f"{values.size} values on a grid of {pair.grid.count} channels"))
            elif not np.isfinite(values).all():
                refused.append((pair.message_id, "spectrum has non-finite values"))
            else:
                rows.append((pair.message_id, pair.sample_id, pair.analyzer_id, pair.model_version, pair.flag,
                             _utc(pair.measured_at).isoformat(), archived, pair.grid.model_dump_json(),
                             json.dumps(pair.reference), json.dumps(pair.predicted), values.astype("<f8").tobytes(),
                             _utc_or_none(pair.spectrum_at), _utc_or_none(pair.sampled_at), pair.joined_by,
                             pair.spectra_averaged))
        self._db.execute("BEGIN IMMEDIATE")
        try:
            before = self._db.total_changes
            self._db.executemany(f"INSERT OR IGNORE INTO labelled_pairs ({_COLUMNS}) VALUES ({','.join('?' * 15)})", rows)
            stored = self._db.total_changes - before  # ignored rows (stored message ids) change nothing
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return StoreOutcome(stored=stored, repeats=len(rows) - stored, refused=refused)

    def count(self, *, since: datetime | None = None, archived_after: datetime | None = None,
              analyzer: str | None = None) -> int:
        """How many pairs are stored (with a lab sampling time after ``since``, taken by the store after
        ``archived_after`` (lab values a model published then has not seen), of one analyzer, as given)."""
        where, params = _where(since=since, archived_after=archived_after, analyzer=analyzer)
        return self._db.execute(f"SELECT COUNT(*) FROM labelled_pairs {where}", params).fetchone()[0]

    def message_ids(self) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT message_id FROM labelled_pairs ORDER BY message_id")]

    def pairs(self, *, since: datetime | None = None, analyzer: str | None = None, target: str | None = None,
              model_version: str | None = None, newest: int | None = None,
              newest_per_analyzer: int | None = None, archived_until: datetime | None = None,
              spectra: bool = True) -> list[StoredPair]:
        """Stored pairs in lab-time order, optionally after ``since``, of one analyzer, with a lab value for
        ``target``, predicted by ``model_version``, taken by the store at or before ``archived_until``; only the
        ``newest`` n of those, or n per analyzer. ``spectra=False`` leaves the spectra unread (empty arrays): for
        questions about predictions and lab values only."""
        where, params = _where(since=since, analyzer=analyzer, model_version=model_version, archived_until=archived_until)
        columns = _COLUMNS if spectra else _COLUMNS.replace("spectrum,", "x'' AS spectrum,", 1)
        rows = self._db.execute(f"SELECT {columns} FROM labelled_pairs {where} ORDER BY measured_at, message_id", params)
        found = [_read(row) for row in rows]
        if target is not None:
            found = [p for p in found if target in p.reference]
        if newest_per_analyzer:
            per_analyzer: dict[str, list[StoredPair]] = {}
            for pair in found:
                per_analyzer.setdefault(pair.analyzer_id, []).append(pair)
            kept = {id(p) for pairs in per_analyzer.values() for p in pairs[-newest_per_analyzer:]}
            found = [p for p in found if id(p) in kept]
        return found[-newest:] if newest else found

    def training_arrays(self, targets: list[str], grid: WavelengthGrid,
                        since: datetime | None = None) -> tuple[np.ndarray, np.ndarray, list[StoredPair]]:
        """Spectra (n, channels) and lab values (n, targets) of the pairs on ``grid`` with every target measured."""
        chosen = [p for p in self.pairs(since=since) if p.grid == grid and all(t in p.reference for t in targets)]
        X = np.array([p.spectrum for p in chosen], dtype=np.float64).reshape(len(chosen), grid.count)
        y = np.array([[p.reference[t] for t in targets] for p in chosen], dtype=np.float64).reshape(len(chosen), len(targets))
        return X, y, chosen


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _utc_or_none(moment: datetime | None) -> str | None:
    return None if moment is None else _utc(moment).isoformat()


def _where(*, since: datetime | None = None, archived_after: datetime | None = None,
           archived_until: datetime | None = None, analyzer: str | None = None,
           model_version: str | None = None) -> tuple[str, list]:
    """The WHERE clause (or '') and its parameters for the conditions given."""
    conditions = (("measured_at > ?", None if since is None else _utc(since).isoformat()),
                  ("archived_at > ?", None if archived_after is None else _utc(archived_after).isoformat()),
                  ("archived_at <= ?", None if archived_until is None else _utc(archived_until).isoformat()),
                  ("analyzer_id = ?", analyzer), ("model_version = ?", model_version))
    given = [(clause, value) for clause, value in conditions if value is not None]
    return (f"WHERE {' AND '.join(c for c, _ in given)}" if given else ""), [v for _, v in given]


def prediction_errors(pairs: Iterable[StoredPair], per_analyzer: bool = False) -> dict:
    """Prediction - lab value of each pair, in order, per target (or per (analyzer, target)), as arrays."""
    found: dict = {}
    for pair in pairs:
        for target, value in pair.reference.items():
            if target in pair.predicted:
                key = (pair.analyzer_id, target) if per_analyzer else target
                found.setdefault(key, []).append(pair.predicted[target] - value)
    return {key: np.array(errors) for key, errors in found.items()}


def _read(row: tuple) -> StoredPair:
    (message_id, sample_id, analyzer_id, model_version, flag, measured_at, archived_at, grid, reference, predicted,
     spectrum, spectrum_at, sampled_at, joined_by, spectra_averaged) = row
    return StoredPair(message_id=message_id, sample_id=sample_id, analyzer_id=analyzer_id, model_version=model_version,
                      flag=flag, measured_at=datetime.fromisoformat(measured_at),
                      archived_at=datetime.fromisoformat(archived_at), grid=WavelengthGrid.model_validate_json(grid),
                      reference=json.loads(reference), predicted=json.loads(predicted),
                      spectrum=np.frombuffer(spectrum, dtype="<f8").copy(),
                      spectrum_at=None if spectrum_at is None else datetime.fromisoformat(spectrum_at),
                      sampled_at=None if sampled_at is None else datetime.fromisoformat(sampled_at),
                      joined_by=joined_by, spectra_averaged=spectra_averaged)
