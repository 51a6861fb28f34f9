"""What the bridge has published, on disk, so that a restart neither re-sends nor skips.

One small JSON file per analyzer in the state folder, replaced atomically after the broker
acknowledged each file: the next sequence number and the last acknowledged file (name, content
sha256, modification time). The acknowledged file is then moved to ``published/``; if the bridge stops
between the acknowledgement and the move, the state names the file, and the restarted bridge
moves it without sending it again. A lock file keeps a second bridge off the same state.

A rejected file that could not be moved to ``rejected/`` (a read-only share, say) is listed under
``unmoved`` while it stays in the folder unchanged, so that it is not read and rejected again every poll.
"""

from __future__ import annotations

import fcntl
import os
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nirstream.core.artifacts.atomic_files import write_atomically


class PublishedFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    sha256: str
    mtime_ns: int  # with name and sha256: the very file, not a later identical export
    message_id: str
    sequence: int
    published_at: datetime


def state_name(name: str) -> str:
    """A file name as JSON can hold it: a name that is not valid UTF-8 gets backslash escapes for its bytes."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


class UnmovedFile(BaseModel):
    """A rejected file left in the folder because moving it failed; skipped while its name, size and time stay."""

    model_config = ConfigDict(extra="forbid")

    name: str  # state_name of the file's name
    size: int
    mtime_ns: int
    reason: str


class BridgeState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    analyzer_id: str
    next_sequence: int = Field(default=0, ge=0)
    published: int = Field(default=0, ge=0, description="files acknowledged by the broker since the state began")
    last: PublishedFile | None = None  # the last acknowledged file; it may still wait to be moved to published/
    unmoved: list[UnmovedFile] = Field(default_factory=list)


class StateLocked(ValueError):
    """Another bridge holds this analyzer's state."""


class StateStore:
    def __init__(self, state_dir: Path, analyzer_id: str) -> None:
        self.analyzer_id = analyzer_id
        self.path = state_dir / f"{analyzer_id}.json"
        self._lock_path = state_dir / f"{analyzer_id}.lock"
        self._lock_fd: int | None = None

    def lock(self) -> None:
        """Hold this analyzer's lock until the process ends (the kernel releases it even after kill -9)."""
        self._lock_fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            self._lock_fd = None
            raise StateLocked(f"another nirstream ingest is running for analyzer {self.analyzer_id!r} "
                              f"(lock {self._lock_path})") from None

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def load(self) -> BridgeState:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return BridgeState(analyzer_id=self.analyzer_id)
        try:
            state = BridgeState.model_validate_json(text)
        except ValidationError as exc:
            # refuse rather than start over: a fresh state would reuse sequence numbers
            raise ValueError(f"state file {self.path} is unreadable ({exc.errors()[0]['msg']}); "
                             "fix it or move it away to start a new sequence") from None
        if state.analyzer_id != self.analyzer_id:
            raise ValueError(f"state file {self.path} belongs to analyzer {state.analyzer_id!r}")
        return state

    def save(self, state: BridgeState) -> None:
        write_atomically(self.path, state.model_dump_json(indent=2) + "\n")
