"""An append-only, hash-chained log of JSON records with a head anchor: the registry's audit trail.

Each line of the log is one record in canonical JSON. A chained record carries

* ``prev`` -- the ``hash`` of the record before it; a record that follows no chained record (the first of a new
  log, or the first after the lines of a registry older than the audit trail) takes the sha256 of all the bytes
  before it instead, which seals those lines;
* ``hash`` -- sha256 of the record's canonical JSON without ``hash``.

So editing a record, removing one, reordering or inserting lines breaks the chain at a line that can be named.
A chain cannot see a cut tail, so every append also replaces the *anchor* ``<log>.head`` atomically with the
number of lines and the last hash. A writer appends first and updates the anchor second: a crash between the two
leaves the anchor one record behind, which verification accepts (the extra record must still chain onto the
anchor's hash) and the next append repairs. A writer that finds the log disagreeing with the anchor still
appends (operations do not stop) but leaves the anchor alone, so the evidence stays until someone looks.

Writers hold an exclusive ``flock`` on the log across reading its tail, appending and updating the anchor
(two trainers publishing at once interleave whole records, never fork the chain); verification holds a shared
one, so it never sees a half-finished append. Lines written before the audit trail existed (no ``prev``/``hash``)
are read as legacy records: shown, counted, sealed by the first chained record, but not verifiable themselves.

Not protected: someone who can write the files may rewrite the whole chain and its anchor consistently. Keep the
head hash elsewhere (it is printed by ``nirstream models history``) and check it with ``--expect-head``.
"""

from __future__ import annotations

import fcntl
import getpass
import json
import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nirstream.core.artifacts.atomic_files import write_atomically
from nirstream.core.artifacts.hashing import canonical_json, sha256_bytes, sha256_json
from nirstream.core.artifacts.manifest import ArtifactError
from nirstream.core.messages.common import utc_now

log = logging.getLogger(__name__)

HEAD_SUFFIX = ".head"


class AuditLogError(ArtifactError):
    """An audit log or anchor that cannot be read."""


def current_actor(explicit: str | None = None) -> str:
    """Who acts: ``explicit`` (a ``--by``), else ``NIRSTREAM_USER`` (settings), else the OS user at this host."""
    if explicit:
        return explicit
    from nirstream.core.settings import SharedSettings

    configured = SharedSettings.load().user
    if configured:
        return configured
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # a container user without a passwd entry or login name
        user = f"uid{os.getuid()}"
    return f"{user}@{socket.gethostname()}"


def record_hash(record: dict[str, Any]) -> str:
    return sha256_json({k: v for k, v in record.items() if k != "hash"})


@dataclass
class LogLine:
    number: int  # 1-based, as an editor shows it
    offset: int  # where the line starts in the file
    fields: dict[str, Any] | None  # None: not a JSON object
    complete: bool  # ends with a newline

    @property
    def chained(self) -> bool:
        return self.fields is not None and ("hash" in self.fields or "prev" in self.fields)

    @property
    def legacy(self) -> bool:
        return self.fields is not None and not self.chained


def parse_lines(data: bytes) -> list[LogLine]:
    """One ``LogLine`` per newline-separated line (numbered as ``wc -l`` and editors count), the last maybe incomplete."""
    lines, offset = [], 0
    pieces = data.split(b"\n")
    for number, raw in enumerate(pieces[:-1] + ([pieces[-1]] if pieces[-1] else []), start=1):
        try:
            fields = json.loads(raw)
        except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested past the parser's depth
            fields = None
        complete = offset + len(raw) < len(data)
        lines.append(LogLine(number, offset, fields if isinstance(fields, dict) else None, complete))
        offset += len(raw) + 1
    return lines


def _prev_for(lines: list[LogLine], index: int, data: bytes) -> str:
    """What record ``index`` must name as ``prev``: its predecessor's hash, or the seal of every byte before it."""
    before = lines[index - 1] if index > 0 else None
    if before is not None and before.chained:
        return str(before.fields.get("hash"))
    return sha256_bytes(data[: lines[index].offset] if index < len(lines) else data)


@dataclass(frozen=True)
class Anchor:
    count: int  # lines in the log when it was written
    hash: str  # the last record's hash
    at: str = ""


@dataclass(frozen=True)
class ChainProblem:
    line: int
    kind: str  # edited | removed | reordered | inserted | truncated | anchor | rewritten
    message: str


@dataclass
class ChainReport:
    records: int = 0
    chained: int = 0
    legacy: int = 0
    head: str | None = None  # the last chained record's hash: what to keep elsewhere
    problems: list[ChainProblem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    lines: list[LogLine] = field(default_factory=list, repr=False)  # what was verified, for display

    @property
    def intact(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {"intact": self.intact, "records": self.records, "chained": self.chained, "legacy": self.legacy,
                "head": self.head, "problems": [p.__dict__ for p in self.problems], "notes": self.notes}


def _chain_problems(lines: list[LogLine], data: bytes) -> list[ChainProblem]:
    problems = []
    first_at = {}  # hash -> index of the first record carrying it
    for index, line in enumerate(lines):
        if line.chained and isinstance(line.fields.get("hash"), str):
            first_at.setdefault(line.fields["hash"], index)
    chain_began = None
    for index, line in enumerate(lines):
        n = line.number
        if not line.complete:
            problems.append(ChainProblem(n, "truncated", f"line {n} is incomplete: cut mid-record, or a write was interrupted"))
            continue
        if line.fields is None:
            problems.append(ChainProblem(n, "edited", f"line {n} is not a JSON record: edited or corrupted"))
            continue
        if line.legacy:
            if chain_began is not None:
                problems.append(ChainProblem(n, "inserted", f"line {n} has no hash although the chain began at line "
                                             f"{chain_began}: inserted by hand, or written by a nirstream without the "
                                             "audit trail"))
            continue
        chain_began = chain_began or n
        if not isinstance(line.fields.get("hash"), str) or not isinstance(line.fields.get("prev"), str):
            problems.append(ChainProblem(n, "edited", f"line {n} lacks its prev or hash field: edited"))
            continue
        try:
            matches = record_hash(line.fields) == line.fields["hash"]
        except ValueError:  # NaN or Infinity: never written by a writer
            matches = False
        if not matches:
            problems.append(ChainProblem(n, "edited", f"line {n} was edited: its content does not match its hash"))
        if index > 0 and lines[index - 1].fields is None:
            continue  # its predecessor is unreadable (reported): nothing to compare with
        if line.fields["prev"] == _prev_for(lines, index, data):
            continue
        source = first_at.get(line.fields["prev"])
        if source is None and index > 0 and lines[index - 1].legacy:
            problems.append(ChainProblem(n, "edited", f"the legacy lines before line {n} changed after line {n} sealed "
                                         "them, or a line was removed there"))
        elif source is None:
            problems.append(ChainProblem(n, "removed", f"the record before line {n} is missing: it was removed, or "
                                         f"line {n - 1} was rewritten" if n > 1 else
                                         f"line {n} continues a chain whose earlier records were removed"))
        elif source > index:
            problems.append(ChainProblem(n, "reordered", f"line {n} is out of order: it follows line {source + 1}'s "
                                         "record in the chain, which now comes after it"))
        else:
            problems.append(ChainProblem(n, "reordered", f"line {n} follows line {source + 1}'s record in the chain, not "
                                         f"line {n - 1}'s: lines were reordered, duplicated or inserted"))
    return problems


def _anchor_problems(lines: list[LogLine], anchor: Anchor | None, notes: list[str] | None = None) -> list[ChainProblem]:
    """The log's tail against the anchor (the one check that sees a cut tail)."""
    notes = notes if notes is not None else []
    n = len(lines)
    chained = [line for line in lines if line.chained]
    if anchor is None:
        if not chained:
            return []
        if len(chained) == 1 and chained[0] is lines[-1]:
            notes.append(f"no head anchor yet: a writer stopped between appending line {n} and writing it "
                         "(harmless; the next append writes it)")
            return []
        return [ChainProblem(chained[0].number, "anchor", "the head anchor is missing although the log is chained: it "
                             "was deleted, so a cut tail cannot be ruled out")]
    named = lines[anchor.count - 1] if 0 < anchor.count <= n else None
    if named is None or not named.chained or named.fields.get("hash") != anchor.hash:
        moved = [line.number for line in chained if line.fields.get("hash") == anchor.hash]
        if moved and moved[0] < anchor.count:  # the chain problems name where
            return [ChainProblem(moved[0], "removed", f"the head anchor's record (line {anchor.count} when written) is "
                                 f"now line {moved[0]}: {anchor.count - moved[0]} line(s) before it were removed")]
        if anchor.count > n:
            gone = f"line {n + 1}" if anchor.count == n + 1 else f"lines {n + 1}-{anchor.count}"
            return [ChainProblem(n + 1, "truncated", f"the log was truncated: the head anchor counts {anchor.count} "
                                 f"records ending in {anchor.hash[:12]}, the log has {n} ({gone} removed)")]
        return [ChainProblem(anchor.count, "truncated", f"line {anchor.count} is not the record the head anchor names "
                             f"({anchor.hash[:12]}): the tail was cut and rewritten, or the anchor was edited")]
    if n == anchor.count + 1:
        notes.append(f"the head anchor is one record behind: a writer stopped between appending line {n} and updating "
                     "it (harmless; the next append updates it)")
    elif n > anchor.count + 1:
        return [ChainProblem(anchor.count + 2, "inserted", f"lines {anchor.count + 2}-{n} were appended without updating "
                             f"the head anchor (it names line {anchor.count}): by hand, or bypassing the lock")]
    return []


def verify_chain(data: bytes, anchor: Anchor | None, expect_head: str | None = None,
                 anchor_error: str | None = None) -> ChainReport:
    """Check every record's hash and link, the tail against the anchor, and optionally a head hash kept elsewhere."""
    if expect_head is not None and (len(expect_head) < 12 or any(c not in "0123456789abcdef" for c in expect_head)):
        raise ValueError(f"a kept head is a sha256 in hex (at least its first 12 characters), got {expect_head!r}")
    lines = parse_lines(data)
    chained = [line for line in lines if line.chained]
    report = ChainReport(records=len(lines), chained=len(chained), legacy=sum(line.legacy for line in lines), lines=lines)
    report.head = str(chained[-1].fields.get("hash")) if chained else None
    report.problems = _chain_problems(lines, data)
    if anchor_error:
        report.problems.append(ChainProblem(len(lines), "anchor", f"the head anchor is unreadable: {anchor_error}"))
    else:
        report.problems += _anchor_problems(lines, anchor, report.notes)
    if expect_head is not None:
        kept = [line.number for line in chained if str(line.fields.get("hash", "")).startswith(expect_head)]
        if kept:
            report.notes.append(f"the head you kept is line {kept[0]}")
        else:
            report.problems.append(ChainProblem(len(lines), "rewritten", f"the head you kept ({expect_head[:12]}) is not a "
                                                "record of this chain: the log was rewritten, or truncated before it"))
    report.problems.sort(key=lambda p: p.line)
    if report.legacy:
        report.notes.insert(0, f"{report.legacy} legacy (unchained) record(s) from before the audit trail: sealed by the "
                            "first chained record, but not verifiable themselves")
    return report


class AuditLog:
    """A hash-chained JSON-lines log at ``path`` with its anchor at ``path`` + ``.head``."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.head_path = self.path.with_name(self.path.name.rsplit(".", 1)[0] + HEAD_SUFFIX)

    def anchor(self) -> Anchor | None:
        try:
            fields = json.loads(self.head_path.read_text())
            return Anchor(int(fields["count"]), str(fields["hash"]), str(fields.get("at", "")))
        except FileNotFoundError:
            return None
        except OSError as exc:  # permissions, a directory in its place, an I/O error: named, not a traceback
            raise AuditLogError(f"{self.head_path} cannot be read: {exc.strerror or exc}") from None
        except (ValueError, KeyError, TypeError, OverflowError, RecursionError) as exc:  # e.g. {"count": Infinity}
            raise AuditLogError(f"{self.head_path} is unreadable: {exc}") from None

    def readable_lines(self) -> list[LogLine]:
        """The lines that hold a JSON record, legacy ones included (no lock, no verification: for status and history).
        A line still being written is left out; an unreadable one is skipped with a warning."""
        if not self.path.exists():
            return []
        lines = []
        for line in parse_lines(self.path.read_bytes()):
            if line.fields is not None and line.complete:
                lines.append(line)
            elif line.complete:
                log.warning("%s line %d is not a JSON record: skipped (nirstream models history --verify)", self.path,
                            line.number)
        return lines

    def verify(self, expect_head: str | None = None) -> ChainReport:
        """Verify under a shared lock, so that no append is seen half done."""
        with self.verified(expect_head) as report:
            return report

    @contextmanager
    def verified(self, expect_head: str | None = None) -> Iterator[ChainReport]:
        """The chain verified under the shared lock, held until the block ends: a file that writers change under the
        exclusive lock (the champion pointer) read inside the block is the one this report's records describe."""
        anchor, anchor_error = None, None
        with self._locked(fcntl.LOCK_SH) as handle:
            data = handle.read() if handle else b""
            try:
                anchor = self.anchor()
            except AuditLogError as exc:
                anchor_error = str(exc)
            yield verify_chain(data, anchor, expect_head, anchor_error)

    @contextmanager
    def writing(self) -> Iterator[AuditAppender]:
        """Hold the log's exclusive lock: read its records, act, append (e.g. move a pointer, then record it)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._locked(fcntl.LOCK_EX) as handle:
            yield AuditAppender(self, handle)

    @contextmanager
    def _locked(self, operation: int) -> Iterator[Any]:
        """The log opened and locked (exclusive: created for appending; shared: None when there is no log yet)."""
        if operation == fcntl.LOCK_SH and not self.path.exists():
            yield None
            return
        with self.path.open("a+b" if operation == fcntl.LOCK_EX else "rb") as handle:
            fcntl.flock(handle.fileno(), operation)
            try:
                handle.seek(0)
                yield handle
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


class AuditAppender:
    """The log as one lock holder sees it, and the only way to append to it."""

    def __init__(self, audit: AuditLog, handle):
        self._audit, self._handle = audit, handle
        self._data = handle.read()

    @property
    def records(self) -> list[dict[str, Any]]:
        return [line.fields for line in parse_lines(self._data) if line.fields is not None and line.complete]

    def append(self, fields: dict[str, Any]) -> dict[str, Any]:
        """Chain ``fields`` (JSON values) onto the log, then move the anchor if the log agreed with it."""
        if self._data and not self._data.endswith(b"\n"):
            self._write(b"\n")  # a torn last line stays a (reported) broken line, not part of the new record
        lines = parse_lines(self._data)
        try:
            agreed = not _anchor_problems(lines, self._audit.anchor())
        except AuditLogError:
            agreed = False
        record = {k: v for k, v in fields.items() if k not in ("prev", "hash")}
        record["prev"] = _prev_for(lines, len(lines), self._data)
        record["hash"] = record_hash(record)
        self._write((canonical_json(record) + "\n").encode("utf-8"))
        if agreed:
            write_atomically(self._audit.head_path, json.dumps(
                {"count": len(lines) + 1, "hash": record["hash"], "at": utc_now().isoformat()}))
        else:
            log.warning("%s disagrees with %s: record appended, anchor left as evidence (nirstream models history)",
                        self._audit.path, self._audit.head_path.name)
        return record

    def _write(self, payload: bytes) -> None:
        self._handle.write(payload)  # "a" mode: always at the end, whatever was read
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._data += payload
