"""Which files in the watched folder are complete, oldest first.

Polling, not inotify: analyzers often write to network shares (SMB/NFS), where inotify sees no
events for writes made by other machines. A file counts as complete once its size and modification
time have stayed the same for at least one poll interval, or at first sight when it was last modified
more than ``settle_seconds`` ago (files already there when the bridge starts). An empty file is taken
only by the settle rule: analyzers often create a file first and write it a moment later.

Symbolic links are never followed (anyone who can write to the share could point one at any file the
bridge can read); they are listed, with their own times, so that the bridge rejects them. Other
non-regular entries (folders, FIFOs, sockets) are skipped. A listing that fails (``OSError``: a network
share reconnecting) raises; the caller retries after a poll, and the scanner's memory is kept.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class ListedFile:
    """A file seen in the folder: where, how big, when last modified."""

    path: Path
    size: int
    mtime_ns: int
    symlink: bool = False  # the entry is a symbolic link (its own size and time): rejected, never followed

    @property
    def name(self) -> str:
        return self.path.name


@dataclass(frozen=True)
class ScanResult:
    ready: list[ListedFile]  # complete files, in order (modification time, then name)
    waiting: int  # files seen but not yet complete, and every file after the first of them
    listed: list[ListedFile] = field(default_factory=list)  # every file seen, complete or not

    @property
    def first_waiting(self) -> ListedFile | None:
        """The oldest file not yet complete (the ones after it wait behind it), or None."""
        return self.listed[len(self.ready)] if self.waiting else None


class FolderScanner:
    """Lists the folder's files with one of ``suffixes`` (hidden files and subfolders are skipped)."""

    def __init__(self, folder: Path, suffixes: frozenset[str], poll_seconds: float, settle_seconds: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.folder, self.suffixes = folder, suffixes
        self.poll_seconds, self.settle_seconds = poll_seconds, settle_seconds
        self._clock = clock
        self._unchanged_since: dict[str, tuple[int, int, float]] = {}  # name -> (size, mtime_ns, first seen so)

    def _listing(self) -> list[ListedFile]:
        files = []
        with os.scandir(self.folder) as entries:
            for entry in entries:
                if entry.name.startswith(".") or Path(entry.name).suffix.lower() not in self.suffixes:
                    continue
                try:
                    symlink = entry.is_symlink()
                    if not (symlink or entry.is_file(follow_symlinks=False)):
                        continue
                    stat = entry.stat(follow_symlinks=False)
                except FileNotFoundError:  # removed between listing and stat
                    continue
                files.append(ListedFile(Path(entry.path), stat.st_size, stat.st_mtime_ns, symlink))
        return sorted(files, key=lambda c: (c.mtime_ns, c.name))

    def scan(self) -> ScanResult:
        """Complete files in order. Stops at the first incomplete one, so a later file never overtakes it."""
        now, wall = self._clock(), time.time()
        files = self._listing()
        previous, self._unchanged_since = self._unchanged_since, {}
        ready: list[ListedFile] = []
        blocked = False
        for file in files:
            size, mtime, since = previous.get(file.name, (None, None, now))
            if (size, mtime) != (file.size, file.mtime_ns):
                since = now
            self._unchanged_since[file.name] = (file.size, file.mtime_ns, since)
            settled = wall - file.mtime_ns / 1e9 >= self.settle_seconds
            steady = file.size > 0 and now - since >= self.poll_seconds
            if not blocked and (settled or steady):
                ready.append(file)
            else:
                blocked = True
        return ScanResult(ready, len(files) - len(ready), files)
