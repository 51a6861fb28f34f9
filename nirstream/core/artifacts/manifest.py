"""Checksummed artifact folders: a MANIFEST.json lists every file's sha256 and size; nothing unlisted may sit beside.

Model bundles and calibration transfers are both such folders, so both are verified by this one code.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from nirstream.core.artifacts.hashing import sha256_file

MANIFEST_FILE = "MANIFEST.json"
SIGNATURE_FILE = "MANIFEST.sig"  # the manifest's signature (signing.py): beside it, not listed in it


class ManifestTrust(Protocol):
    """What decides whether a manifest's signature is trusted (``signing.ArtifactTrust``; a protocol here, as
    signing.py builds on this module)."""

    def check(self, directory: Path, manifest: bytes) -> str | None: ...


class ArtifactError(RuntimeError):
    """An artifact folder that is missing, partial, tampered with or unreadable."""


def write_manifest(directory: Path, files: Iterable[str], **fields: Any) -> None:
    manifest = {**fields, "files": {name: {"sha256": sha256_file(directory / name), "bytes": (directory / name).stat().st_size}
                                    for name in files}}
    (directory / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2))


def manifest_checksum(directory: str | Path) -> str:
    """The artifact's checksum: sha256 of its manifest, which lists every file's sha256 (so it covers them all)."""
    return sha256_file(Path(directory) / MANIFEST_FILE)


def verify_manifest(directory: str | Path, allowed: Iterable[frozenset[str]], what: str = "artifact",
                    error: type[Exception] = ArtifactError, trust: ManifestTrust | None = None) -> dict[str, Any]:
    """Check the manifest against the files (one of the ``allowed`` file sets); return it or raise ``error``.
    With ``trust``, the manifest's signature is checked first, on the same bytes as the checksums are read from
    (``SignatureError``)."""
    directory = Path(directory)
    manifest_path = directory / MANIFEST_FILE
    if not directory.is_dir():
        raise error(f"{directory}: no such {what} directory")
    if not manifest_path.exists():
        raise error(f"{directory}: no {MANIFEST_FILE} (partial or unfinished {what})")
    manifest_bytes = manifest_path.read_bytes()
    if trust is not None:
        trust.check(directory, manifest_bytes)
    try:
        manifest = json.loads(manifest_bytes)
        listed = manifest["files"]
    except (ValueError, KeyError, TypeError) as exc:
        raise error(f"{directory}: unreadable {MANIFEST_FILE}: {exc}") from None
    allowed = list(allowed)
    if set(listed) not in [set(a) for a in allowed]:
        raise error(f"{directory}: manifest lists {sorted(listed)}, expected " + " or ".join(str(sorted(a)) for a in allowed))
    extra = {p.name for p in directory.iterdir()} - set(listed) - {MANIFEST_FILE, SIGNATURE_FILE}
    if extra:
        raise error(f"{directory}: unexpected file(s) {sorted(extra)}")
    for name, expected in listed.items():
        path = directory / name
        if not path.exists():
            raise error(f"{directory}: {name} is missing")
        actual = sha256_file(path)
        if actual != expected.get("sha256"):
            raise error(f"{directory}: {name} checksum mismatch (tampered or corrupt): "
                        f"{actual[:12]} != {str(expected.get('sha256'))[:12]}")
    return manifest
