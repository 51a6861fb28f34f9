"""Read each complete file once, publish it as a binary spectrum message, then move it to ``published/``;
move an unusable file to ``rejected/`` with ``<name>.reason.txt`` beside it and go on.

Order per analyzer: files are taken by modification time, then name, one at a time, each
acknowledged before the next is sent, all under the analyzer id as the Kafka key (one partition).

Delivery: the state is saved after the broker's acknowledgement, the file moved after the state.
A crash before the state is saved re-sends that one file on restart, as the same message: same
sequence, same ``message_id`` (from analyzer, file name and content sha256), same timestamp (the
file's modification time). Nothing else is ever re-sent and nothing is skipped.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from nirstream.core.atomic_files import write_atomically
from nirstream.core.codec import DEFAULT_MAX_MESSAGE_BYTES, encode_binary
from nirstream.core.datasets.spectrum_file import FORMATS
from nirstream.core.datasets.tabular import DataFileError
from nirstream.core.errors import RejectReason, SpectrumRejected
from nirstream.core.messages.common import WavelengthGrid, utc_now
from nirstream.core.messages.spectrum import SpectrumHeader
from nirstream.core.resampling import on_regular_grid
from nirstream.core.validation import check_spectrum_values
from nirstream.ingest.publisher import MessageRefused, SpectrumPublisher, Stopped
from nirstream.ingest.scanner import Candidate, FolderScanner
from nirstream.ingest.state import BridgeState, PublishedFile, StateStore

log = logging.getLogger(__name__)

PUBLISHED_DIR = "published"
REJECTED_DIR = "rejected"
STATE_DIR = ".nirstream-ingest"
UNREADABLE = "unreadable"  # the reason label of a file no reader could parse (the others are RejectReason values)
DEFAULT_MAX_FILE_BYTES = 16 << 20


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

    @property
    def state_folder(self) -> Path:
        return self.state_dir or self.folder / STATE_DIR


@dataclass
class BridgeSummary:
    published: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)


class BridgeHalted(ValueError):
    """The bridge cannot go on without risking a file sent twice or skipped."""


class _ReadLater(Exception):
    """A file that cannot be read now but may be later."""


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
    if len(raw) > DEFAULT_MAX_MESSAGE_BYTES:
        raise FileRejected(RejectReason.OVERSIZE.value,
                           f"{len(raw)}-byte message exceeds the worker's {DEFAULT_MAX_MESSAGE_BYTES}-byte limit")
    return raw


def free_name(folder: Path, name: str) -> Path:
    """``folder/name``, or ``folder/<stem>.<n><suffix>`` when an earlier file of that name is already there."""
    target, n = folder / name, 1
    while target.exists():
        target, n = folder / f"{Path(name).stem}.{n}{Path(name).suffix}", n + 1
    return target


class FileBridge:
    def __init__(self, config: BridgeConfig, publisher: SpectrumPublisher, stop: asyncio.Event) -> None:
        self.config, self.publisher, self.stop = config, publisher, stop
        self.published_dir = config.folder / PUBLISHED_DIR
        self.rejected_dir = config.folder / REJECTED_DIR
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
        try:
            while not self.stop.is_set():
                scan = self.scanner.scan()
                try:
                    for candidate in scan.ready:
                        if self.stop.is_set():
                            break
                        await self._take(candidate)
                    if scan.ready:
                        continue  # look again at once: files may have arrived meanwhile
                except _ReadLater:
                    pass  # the files after it wait too: order is kept
                if self.config.once and not scan.ready and scan.waiting == 0:
                    break
                try:
                    await asyncio.wait_for(self.stop.wait(), timeout=self.config.poll_seconds)
                except asyncio.TimeoutError:
                    pass
        except Stopped:
            pass
        finally:
            await self.publisher.close()
            self.store.unlock()
        return self.summary

    async def _take(self, candidate: Candidate) -> None:
        if candidate.size > self.config.max_file_bytes:
            return self._reject(candidate, None, FileRejected(
                RejectReason.OVERSIZE.value, f"{candidate.size} bytes; the limit is {self.config.max_file_bytes}"))
        try:
            data = candidate.path.read_bytes()
        except FileNotFoundError:
            log.info("%s disappeared before it was read", candidate.name)
            return None
        except OSError as exc:  # e.g. still locked by the analyzer on an SMB share: not the file's fault
            log.warning("cannot read %s yet (%s); trying again after a poll", candidate.name, exc)
            raise _ReadLater from None
        sha256 = hashlib.sha256(data).hexdigest()
        last = self.state.last
        if last is not None and (last.name, last.sha256, last.mtime_ns) == (candidate.name, sha256, candidate.mtime_ns):
            log.info("%s was acknowledged before the last stop; moving it to %s/", candidate.name, PUBLISHED_DIR)
            return self._move(candidate.path, self.published_dir)
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
        self.store.save(self.state)
        self._move(candidate.path, self.published_dir)
        self.summary.published.append(candidate.name)
        log.info("published %s as %s #%d", candidate.name, self.config.analyzer_id, sequence)
        return None

    def _reject(self, candidate: Candidate, sha256: str | None, error: FileRejected) -> None:
        target = free_name(self.rejected_dir, candidate.name)
        # the reason first: a crash before the move rejects the file again, never leaves it without a reason
        write_atomically(target.with_name(target.name + ".reason.txt"),
                         f"file: {candidate.name}\nanalyzer: {self.config.analyzer_id}\nreason: {error.reason}\n"
                         f"detail: {error.detail}\nsha256: {sha256 or '-'}\nsize: {candidate.size}\n"
                         f"rejected_at: {utc_now().isoformat()}\n")
        self._move(candidate.path, self.rejected_dir, target)
        self.summary.rejected.append(candidate.name)
        log.warning("rejected %s (%s): %s", candidate.name, error.reason, error.detail)

    @staticmethod
    def _move(path: Path, folder: Path, target: Path | None = None) -> None:
        target = target or free_name(folder, path.name)
        try:
            os.replace(path, target)
        except FileNotFoundError:
            log.info("%s disappeared before it was moved", path.name)
        except OSError as exc:
            # going on would publish the next file and forget this one was sent: stop, the state still names it
            raise BridgeHalted(f"cannot move {path} to {target} ({exc}); stopped so that nothing is sent twice") from None
