"""Read each complete file once, publish it as a binary spectrum message, then move it to ``published/``;
move an unusable file to ``rejected/`` with ``<name>.reason.txt`` beside it and go on.

Order per analyzer: files are taken by modification time, then name, one at a time, each
acknowledged before the next is sent, all under the analyzer id as the Kafka key (one partition).

Delivery: the state is saved after the broker's acknowledgement, the file moved after the state.
A crash before the state is saved re-sends that one file on restart, as the same message: same
sequence, same ``message_id`` (from analyzer, file name and content sha256), same timestamp (the
file's modification time). A send that timed out or lost its acknowledgement is retried (see
``publisher``), and the broker may already hold it: that message, too, can arrive twice, again as the
same message. Nothing is skipped; consumers drop repeats by ``message_id``.

Nothing in the folder may stop the bridge: a symbolic link is rejected, not followed; a read is bounded
by ``max_file_bytes``; a name that is not UTF-8 or near the file system's length limit still gets its
reason file; a file that cannot be moved to ``rejected/`` is remembered in the state, not retried; a
listing or read that fails (a share reconnecting) is retried after a poll.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import logging
import math
import os
import stat
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from nirstream.core.artifacts.atomic_files import write_atomically
from nirstream.core.messages.codec import encode_binary
from nirstream.core.datasets.spectrum_file import FORMATS
from nirstream.core.datasets.tabular import DataFileError, one_line
from nirstream.core.errors import RejectReason, SpectrumRejected
from nirstream.core.artifacts.file_names import NAME_MAX_BYTES, bounded_name
from nirstream.core.messages.common import WavelengthGrid, utc_now
from nirstream.core.messages.limits import MAX_MESSAGE_BYTES
from nirstream.core.messages.spectrum import SpectrumHeader
from nirstream.core.chemometrics.resampling import on_regular_grid
from nirstream.core.messages.spectrum_checks import check_spectrum_values
from nirstream.ingest import ONCE_ATTEMPTS
from nirstream.ingest.metrics import BridgeMetrics
from nirstream.ingest.publisher import BrokerUnavailable, MessageRefused, SpectrumPublisher, Stopped
from nirstream.ingest.scanner import ListedFile, FolderScanner, ScanResult
from nirstream.ingest.state import BridgeState, PublishedFile, StateStore, UnmovedFile, state_name

log = logging.getLogger(__name__)

PUBLISHED_DIR = "published"
REJECTED_DIR = "rejected"
STATE_DIR = ".nirstream-ingest"
UNREADABLE = "unreadable"  # the reason label of a file no reader could parse (the others are RejectReason values)
DEFAULT_MAX_FILE_BYTES = 16 << 20
REASON_SUFFIX = ".reason.txt"
SYMLINK_DETAIL = "symbolic link: not followed"
DETAIL_CHARS = 1000  # a reason's detail is cut here: reason files are for people, not copies of the file


@dataclass(frozen=True)
class BridgeConfig:
    folder: Path
    analyzer_id: str
    file_format: str  # a key of spectrum_file.FORMATS
    topic: str
    state_dir: Path | None = None  # default folder/.nirstream-ingest
    poll_seconds: float = 2.0
    settle_seconds: float = 60.0
    once: bool = False
    expected_grid: WavelengthGrid | None = None
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    max_message_bytes: int = MAX_MESSAGE_BYTES  # the max_message_bytes setting, which the worker reads too

    @property
    def state_folder(self) -> Path:
        return self.state_dir or self.folder / STATE_DIR


@dataclass
class BridgeSummary:
    published: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    incomplete: str | None = None  # with --once: why files were left unsent (the CLI then exits 1)


class BridgeHalted(ValueError):
    """The bridge cannot go on without risking a file sent twice or skipped."""


class _ReadLater(Exception):
    """A file that cannot be read now but may be later; the message says which and why."""


class FileRejected(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


def message_id(analyzer_id: str, file_name: str, sha256: str) -> str:
    """The same file always gets the same id, so a consumer can tell a re-sent message from a new one."""
    digest = hashlib.sha256(f"{analyzer_id}\0{file_name}\0{sha256}".encode()).hexdigest()
    return f"{analyzer_id}:file:{digest[:32]}"


def spectrum_message(config: BridgeConfig, name: str, data: bytes, sequence: int, modified: datetime,
                     sha256: str) -> bytes:
    """The binary spectrum message for one file, or ``FileRejected`` with the reason."""
    reader, _ = FORMATS[config.file_format]
    try:
        spectrum = reader(name, data)
        grid, values = on_regular_grid(spectrum.values, spectrum.wavelengths)
        check_spectrum_values(values, grid.count)
        header = SpectrumHeader(analyzer_id=config.analyzer_id, sequence=sequence, timestamp=modified, grid=grid,
                                message_id=message_id(config.analyzer_id, name, sha256), sample_id=spectrum.sample_id)
    except SpectrumRejected as exc:
        raise FileRejected(exc.reason.value, exc.detail) from None
    except DataFileError as exc:
        raise FileRejected(UNREADABLE, str(exc)) from None
    except ValidationError as exc:  # e.g. a negative start wavelength, a sample id over 128 characters
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:3])
        raise FileRejected(RejectReason.SCHEMA_INVALID.value, problems) from None
    except ValueError as exc:  # an axis WavelengthGrid cannot describe
        raise FileRejected(RejectReason.WRONG_GRID.value, str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - a file that trips a reader bug is rejected, never a crash loop
        log.exception("reading %s failed", name)
        raise FileRejected(RejectReason.PROCESSING_ERROR.value, f"{type(exc).__name__}: {exc}") from None
    expected = config.expected_grid
    if expected is not None:
        try:
            grid.require_match(expected)  # the worker's rule for a model's grid
        except SpectrumRejected:
            raise FileRejected(RejectReason.WRONG_GRID.value,
                               f"{grid.count} channels {grid.start_nm:g}-{grid.end_nm:g} nm; --expect-grid is "
                               f"{expected.count} channels {expected.start_nm:g}-{expected.end_nm:g} nm") from None
    raw = encode_binary(header, np.asarray(values))
    if len(raw) > config.max_message_bytes:
        raise FileRejected(RejectReason.OVERSIZE.value, f"{len(raw)}-byte message exceeds the {config.max_message_bytes}-byte "
                                                        "limit (max_message_bytes)")
    return raw


class FreeNames:
    """Names for files moved into one folder: ``name``, or ``<stem>.<n><suffix>`` when an earlier file of that name
    is already there; cut to ``max_bytes`` (``bounded_name``) so that a name near the limit still fits with what is
    added. The next ``n`` of each name that was taken is remembered, so an analyzer that reuses one file name costs
    two look-ups a move (each a round trip on a share), not one per earlier file; only the first clash of a name
    after a start counts up through the numbers already there."""

    def __init__(self, folder: Path, max_bytes: int = NAME_MAX_BYTES) -> None:
        self.folder, self.max_bytes = folder, max_bytes
        self._next: dict[str, int] = {}  # only names that were taken: a folder of unique names costs no memory

    def __call__(self, name: str) -> Path:
        target = self.folder / bounded_name(name, self.max_bytes)
        if not os.path.lexists(target):  # lexists: a dangling link there is a name in use, too
            return target
        stem, suffix, n = Path(name).stem, Path(name).suffix, self._next.get(name, 1)
        while os.path.lexists(target := self.folder / bounded_name(f"{stem}.{n}{suffix}", self.max_bytes)):
            n += 1  # a file put there by hand, or the first clash since the start
        self._next[name] = n + 1
        return target


def shown(text: str) -> str:
    """A file name or reason detail as reason files and logs show it: one escaped line, at most DETAIL_CHARS."""
    return one_line(text, DETAIL_CHARS)


def read_listed_file(candidate: ListedFile, limit: int) -> bytes:
    """The file's content, at most ``limit`` bytes (``FileRejected`` when there is more: it grew since the listing).
    Opened without following a symbolic link (one swapped in since the listing is rejected) and without blocking
    (a FIFO, or a lease an SMB server holds for a writer: then ``OSError``, to try again later)."""
    try:
        handle = os.open(candidate.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise FileRejected(UNREADABLE, SYMLINK_DETAIL) from None
        raise
    with os.fdopen(handle, "rb") as file:
        if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
            raise FileRejected(UNREADABLE, "not a regular file")
        data = file.read(limit + 1)
    if len(data) > limit:
        raise FileRejected(RejectReason.OVERSIZE.value, f"over the limit of {limit} bytes (it grew after it was listed)")
    return data


class FileBridge:
    def __init__(self, config: BridgeConfig, publisher: SpectrumPublisher, stop: asyncio.Event) -> None:
        self.config, self.publisher, self.stop = config, publisher, stop
        self.metrics = BridgeMetrics(config.analyzer_id)
        self.published_dir = config.folder / PUBLISHED_DIR
        self.rejected_dir = config.folder / REJECTED_DIR
        self.published_name = FreeNames(self.published_dir)
        self.rejected_name = FreeNames(self.rejected_dir, NAME_MAX_BYTES - len(REASON_SUFFIX))
        _, suffixes = FORMATS[config.file_format]
        self.scanner = FolderScanner(config.folder, suffixes, config.poll_seconds, config.settle_seconds)
        self.store = StateStore(config.state_folder, config.analyzer_id)
        self.summary = BridgeSummary()
        self.state: BridgeState | None = None

    def prepare(self) -> None:
        """Folders and lock; clear errors for a folder that is missing or not writable."""
        if not self.config.folder.is_dir():
            raise FileNotFoundError(f"no such folder to watch: {self.config.folder}")
        for folder in (self.published_dir, self.rejected_dir, self.config.state_folder):
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ValueError(f"cannot create {folder}: {exc}") from None
            if not os.access(folder, os.W_OK):
                raise ValueError(f"{folder} is not writable: the bridge moves files there")
        self.store.lock()
        self.state = self.store.load()

    async def run(self) -> BridgeSummary:
        self.prepare()
        attempts = 0  # consecutive polls that found something it could not read
        stalled = 0  # with --once: consecutive polls that took nothing while files were still incomplete
        # enough for a file written now to pass the settle time (an empty one needs it), then ONCE_ATTEMPTS more
        stall_limit = math.ceil(self.config.settle_seconds / self.config.poll_seconds) + ONCE_ATTEMPTS
        listing_failed = False
        try:
            while not self.stop.is_set():
                waiting_for = None
                try:
                    scan = self.scanner.scan()
                except OSError as exc:  # the share is reconnecting, say: not a reason to stop
                    waiting_for = f"cannot list {self.config.folder} ({exc})"
                    log.warning("%s; trying again after a poll", waiting_for)
                    listing_failed = True
                else:
                    if listing_failed:  # a folder that came back may have come back without its subfolders
                        self._recreate_folders()
                        listing_failed = False
                    self._forget_moved_or_changed(scan.listed)
                    ready = [c for c in scan.ready if not self._unmoved(c)]
                    self.metrics.waiting.set(len(ready) + scan.waiting)
                    try:
                        for candidate in ready:
                            if self.stop.is_set():
                                break
                            await self._take(candidate)
                        if ready:
                            attempts = stalled = 0
                            continue  # look again at once: files may have arrived meanwhile
                    except _ReadLater as exc:  # the files after it wait too: order is kept
                        waiting_for = str(exc)
                    if self.config.once and waiting_for is None:
                        if scan.waiting == 0:
                            break
                        stalled += 1  # a file appended to without end, or empty and dated in the future
                        if stalled >= stall_limit:
                            self._give_up_waiting(stalled, scan)
                            break
                attempts = attempts + 1 if waiting_for else 0
                if self.config.once and attempts >= ONCE_ATTEMPTS:
                    self.summary.incomplete = (f"--once gave up after {attempts} attempts: {waiting_for}; "
                                               "it and the files after it were not sent")
                    log.error("%s", self.summary.incomplete)
                    break
                await self._pause()
        except Stopped:
            pass
        except BrokerUnavailable as exc:  # only with --once: the file in hand stays in the folder for the next run
            self.summary.incomplete = f"--once gave up: the broker could not be reached ({exc}); nothing more was sent"
            log.error("%s", self.summary.incomplete)
        finally:
            await self.publisher.close()
            self.store.unlock()
        return self.summary

    def _give_up_waiting(self, polls: int, scan: ScanResult) -> None:
        first, others = scan.first_waiting, scan.waiting - 1
        self.summary.incomplete = (
            f"--once gave up after {polls} polls: {shown(first.name)} never became complete (it kept changing, or "
            f"stayed empty without getting older than --settle-seconds {self.config.settle_seconds:g}); it"
            + (f" and the {others} file(s) after it were" if others else " was") + " not sent")
        log.error("%s", self.summary.incomplete)

    async def _pause(self) -> bool:
        """Wait one poll, or less when asked to stop; True when asked to stop."""
        try:
            await asyncio.wait_for(self.stop.wait(), timeout=self.config.poll_seconds)
        except asyncio.TimeoutError:
            pass
        return self.stop.is_set()

    async def _take(self, candidate: ListedFile) -> None:
        if candidate.symlink:
            return self._reject(candidate, None, FileRejected(UNREADABLE, SYMLINK_DETAIL))
        try:
            candidate.name.encode("utf-8")
        except UnicodeEncodeError:  # sample id, message id and state all need text: refuse the name, not crash
            return self._reject(candidate, None, FileRejected(
                UNREADABLE, f"file name {os.fsencode(candidate.name)!r} is not valid UTF-8; rename it"))
        if candidate.size > self.config.max_file_bytes:
            return self._reject(candidate, None, FileRejected(
                RejectReason.OVERSIZE.value, f"{candidate.size} bytes; the limit is {self.config.max_file_bytes}"))
        try:
            data = read_listed_file(candidate, self.config.max_file_bytes)
        except FileRejected as exc:
            return self._reject(candidate, None, exc)
        except FileNotFoundError:
            log.info("%s disappeared before it was read", shown(candidate.name))
            return None
        except OSError as exc:  # e.g. still locked by the analyzer on an SMB share: not the file's fault
            message = f"cannot read {shown(candidate.name)} ({exc})"
            log.warning("%s; trying again after a poll", message)
            raise _ReadLater(message) from None
        sha256 = hashlib.sha256(data).hexdigest()
        last = self.state.last
        if last is not None and (last.name, last.sha256, last.mtime_ns) == (candidate.name, sha256, candidate.mtime_ns):
            log.info("%s was acknowledged before the last stop; moving it to %s/", shown(candidate.name), PUBLISHED_DIR)
            return self._move(candidate.path)
        modified = datetime.fromtimestamp(candidate.mtime_ns / 1e9, UTC)
        sequence = self.state.next_sequence
        try:
            raw = spectrum_message(self.config, candidate.name, data, sequence, modified, sha256)
            await self.publisher.publish(self.config.analyzer_id.encode(), raw)
        except FileRejected as exc:
            return self._reject(candidate, sha256, exc)
        except MessageRefused as exc:
            return self._reject(candidate, sha256, FileRejected("refused_by_broker", str(exc)))
        ids = message_id(self.config.analyzer_id, candidate.name, sha256)
        self.state = self.state.model_copy(update={
            "next_sequence": sequence + 1, "published": self.state.published + 1,
            "last": PublishedFile(name=candidate.name, sha256=sha256, mtime_ns=candidate.mtime_ns, message_id=ids,
                                  sequence=sequence, published_at=utc_now())})
        await self._save_state()
        self._move(candidate.path)
        self.summary.published.append(candidate.name)
        self.metrics.published.inc()
        self.metrics.last_published.set_to_current_time()
        self.metrics.waiting.dec()
        log.info("published %s as %s #%d", shown(candidate.name), self.config.analyzer_id, sequence)
        return None

    async def _save_state(self) -> None:
        """Save the state after an acknowledgement; while that fails (a share hiccup), retry after a poll and send
        nothing else: going on would reuse the sequence number after a restart."""
        attempts = 0
        while True:
            try:
                return self.store.save(self.state)
            except OSError as exc:
                attempts += 1
                log.error("cannot save the state %s (%s); nothing more is sent until it is saved", self.store.path, exc)
                if self.config.once and attempts >= ONCE_ATTEMPTS:
                    raise BridgeHalted(f"cannot save the state {self.store.path} ({exc}); the last file sent, "
                                       f"#{self.state.next_sequence - 1}, may be sent again at the next start") from None
            if await self._pause():
                raise Stopped

    def _reject(self, candidate: ListedFile, sha256: str | None, error: FileRejected) -> None:
        """Explain and move the file to ``rejected/``. Nothing here may stop the bridge: a reason that cannot be
        written stays in the log, and a file that cannot be moved is remembered in the state so that it is not
        read, rejected and explained again every poll."""
        name, detail = shown(candidate.name), shown(error.detail)
        self.summary.rejected.append(candidate.name)
        self.metrics.rejected(error.reason).inc()
        self.metrics.waiting.dec()
        log.warning("rejected %s (%s): %s", name, error.reason, detail)
        if not self.rejected_dir.is_dir():  # removed while the bridge runs
            self._recreate_folders()
        target = self.rejected_name(candidate.name)
        reason_file = target.with_name(target.name + REASON_SUFFIX)
        # the reason first: a crash before the move rejects the file again, never leaves it without a reason
        try:
            write_atomically(reason_file, f"file: {name}\nanalyzer: {self.config.analyzer_id}\nreason: {error.reason}\n"
                                          f"detail: {detail}\nsha256: {sha256 or '-'}\nsize: {candidate.size}\n"
                                          f"rejected_at: {utc_now().isoformat()}\n")
        except (OSError, UnicodeError) as exc:
            log.error("cannot write %s (%s): the reason for rejecting %s is only in this log", reason_file, exc, name)
        try:
            os.replace(candidate.path, target)  # a symbolic link is moved as the link
        except FileNotFoundError as exc:
            if os.path.lexists(candidate.path):  # rejected/ itself is gone
                self._leave_in_place(candidate, error, str(exc))
            else:
                log.info("%s disappeared before it was moved", name)
        except OSError as exc:
            self._leave_in_place(candidate, error, str(exc))
        return None

    def _leave_in_place(self, candidate: ListedFile, error: FileRejected, why: str) -> None:
        log.error("cannot move rejected %s to %s/ (%s): it stays in the folder, and is listed under 'unmoved' in %s "
                  "and skipped until it changes; move or delete it by hand", shown(candidate.name), REJECTED_DIR, why,
                  self.store.path)
        self.state = self.state.model_copy(update={"unmoved": [*self.state.unmoved, UnmovedFile(
            name=state_name(candidate.name), size=candidate.size, mtime_ns=candidate.mtime_ns, reason=error.reason)]})
        self._save_unmoved()

    def _unmoved(self, candidate: ListedFile) -> bool:
        key = (state_name(candidate.name), candidate.size, candidate.mtime_ns)
        return any((u.name, u.size, u.mtime_ns) == key for u in self.state.unmoved)

    def _forget_moved_or_changed(self, listed: list[ListedFile]) -> None:
        """Drop ``unmoved`` entries no longer in the folder as they were: a changed file is taken again."""
        present = {(state_name(c.name), c.size, c.mtime_ns) for c in listed}
        kept = [u for u in self.state.unmoved if (u.name, u.size, u.mtime_ns) in present]
        if len(kept) != len(self.state.unmoved):
            self.state = self.state.model_copy(update={"unmoved": kept})
            self._save_unmoved()

    def _save_unmoved(self) -> None:
        try:
            self.store.save(self.state)
        except OSError as exc:  # the list is kept in memory; only a restart would reject those files once more
            log.error("cannot save the state %s (%s)", self.store.path, exc)

    def _recreate_folders(self) -> None:
        for folder in (self.published_dir, self.rejected_dir, self.config.state_folder):
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                log.warning("cannot create %s (%s)", folder, exc)

    def _move(self, path: Path) -> None:
        """Move a published file to ``published/``; any failure stops the bridge (the state still names the file)."""
        target = self.published_name(path.name)
        try:
            os.replace(path, target)
        except FileNotFoundError:
            if not os.path.lexists(path):
                log.info("%s disappeared before it was moved", shown(path.name))
                return
            self._recreate_folders()  # the folder vanished with a share that came back without it
            try:
                os.replace(path, target)
            except OSError as exc:
                self._halt(path, target, exc)
        except OSError as exc:
            self._halt(path, target, exc)

    @staticmethod
    def _halt(path: Path, target: Path, exc: OSError) -> None:
        # going on would publish the next file and forget this one was sent: stop, the state still names it
        raise BridgeHalted(f"cannot move {path} to {target} ({exc}); stopped so that nothing is sent twice") from None
