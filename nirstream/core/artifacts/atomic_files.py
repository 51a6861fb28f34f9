"""Replace a small file so that a reader, or a process restarted after a crash, sees the old or the new
content, never half of it: write a temporary file beside it, fsync, ``os.replace``.

The new file keeps the old one's permission bits, or gets the ones any new file gets (``0o666`` less the
umask, and a default ACL where the folder has one), not ``tempfile.mkstemp``'s private ``0o600``: the files
written here (registry heads, reason files on a share) are read by other users. Temporary names are bounded,
so that a target name near the file system's limit still works."""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from nirstream.core.artifacts.file_names import NAME_MAX_BYTES, bounded_name

_TEMPORARY = ".{name}-{token}.tmp"
_ATTEMPTS = 100


def _create_temporary(folder: Path, name: str) -> tuple[int, Path]:
    """An exclusive new file beside the target, created with mode 0o666 so that the umask and ACLs apply."""
    room = NAME_MAX_BYTES - len(_TEMPORARY.format(name="", token="x" * 16))
    for _ in range(_ATTEMPTS):
        temporary = folder / _TEMPORARY.format(name=bounded_name(name, room), token=secrets.token_hex(8))
        try:
            return os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666), temporary
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name in {folder}")


def write_atomically(path: Path, payload: str) -> None:
    """Write ``payload`` as UTF-8; characters UTF-8 cannot hold (lone surrogates from an undecodable file name)
    are written as backslash escapes rather than failing."""
    handle, temporary = _create_temporary(path.parent, path.name)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", errors="backslashreplace") as out:
            try:
                os.fchmod(out.fileno(), stat.S_IMODE(os.stat(path).st_mode))
            except FileNotFoundError:
                pass  # a new file: the mode os.open gave it
            out.write(payload)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
