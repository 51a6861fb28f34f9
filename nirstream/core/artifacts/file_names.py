"""File names that always fit: a name derived from another (``NAME.reason.txt``, a temporary ``.NAME-…tmp``)
can exceed the file system's limit (255 bytes on ext4, XFS, NFS and SMB shares) when the original is near it."""

from __future__ import annotations

import hashlib
import os

NAME_MAX_BYTES = 255
_DIGEST_CHARS = 12


def bounded_name(name: str, max_bytes: int = NAME_MAX_BYTES) -> str:
    """``name`` when it fits in ``max_bytes`` (as the file system sees it: ``os.fsencode``); else its start, ``~``,
    12 hex digits of its sha256 and its suffix, which still tells one long name from another."""
    encoded = os.fsencode(name)
    if len(encoded) <= max_bytes:
        return name
    stem, dot, suffix = name.rpartition(".")
    suffix = f".{suffix}" if dot and stem and len(os.fsencode(suffix)) < 16 else ""
    stem = name[: len(name) - len(suffix)]
    tail = f"~{hashlib.sha256(encoded).hexdigest()[:_DIGEST_CHARS]}{suffix}"
    room = max_bytes - len(os.fsencode(tail))
    if room < 0:
        raise ValueError(f"no room for a name in {max_bytes} bytes")
    while len(os.fsencode(stem)) > room:  # cut whole characters, never half of a UTF-8 sequence
        stem = stem[: max(len(stem) - max(1, (len(os.fsencode(stem)) - room) // 4), 0)]
    return stem + tail
