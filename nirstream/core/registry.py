"""File-system model registry, TF Serving style: ``base/<version>/`` bundles plus a champion pointer.

* publish: the bundle is written into a hidden temporary directory, then renamed to the next
  integer version (rename is atomic, so a reader never sees half a bundle);
* the ``champion.json`` pointer is replaced atomically (write temp file, ``os.replace``);
* every event (published, promoted, rejected, rolled back) is appended to ``history.jsonl``.

Works without Kafka; announcing promotions to running workers is the caller's business.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from nirstream.core.atomic_files import write_atomically
from nirstream.core.bundle import METADATA_FILE, BundleError, BundleMetadata, load_bundle, verify_bundle
from nirstream.core.messages.common import utc_now

CHAMPION_FILE = "champion.json"
HISTORY_FILE = "history.jsonl"
TRANSFERS_DIR = "transfers"  # transfers/<analyzer>/<n>/ artifacts and transfers/<analyzer>/active.json
ACTIVE_TRANSFER_FILE = "active.json"


class RegistryEvent(BaseModel):
    event: str  # published | promoted | rejected | rolled_back | transfer_published
    version: str
    reason: str = ""
    at: str = ""
    details: dict[str, Any] = {}


class ModelRegistry:
    def __init__(self, base: str | Path):
        self.base = Path(base)

    # -- reading -------------------------------------------------------------------------
    def versions(self) -> list[str]:
        """Complete bundle versions, oldest first (hidden temporaries are ignored)."""
        if not self.base.is_dir():
            return []
        return sorted((p.name for p in self.base.iterdir() if p.is_dir() and p.name.isdigit()), key=int)

    def path(self, version: str) -> Path:
        return self.base / str(version)

    def champion(self) -> str | None:
        """The champion version, or None when nothing has been promoted."""
        pointer = self.base / CHAMPION_FILE
        try:
            return str(json.loads(pointer.read_text())["version"])
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as exc:
            raise BundleError(f"{pointer} is unreadable: {exc}") from None

    def history(self) -> list[RegistryEvent]:
        path = self.base / HISTORY_FILE
        if not path.exists():
            return []
        return [RegistryEvent.model_validate_json(line) for line in path.read_text().splitlines() if line.strip()]

    def status(self, version: str) -> str:
        events = [e for e in self.history() if e.version == str(version)]
        if self.champion() == str(version):
            return "champion"
        return events[-1].event if events else "unknown"

    def metadata(self, version: str | None = None):
        """A version's checksum-verified metadata, without loading its model (no TensorFlow import)."""
        version = version or self.champion()
        if version is None:
            raise BundleError(f"{self.base} has no champion")
        verify_bundle(self.path(version))
        return BundleMetadata.model_validate_json((self.path(version) / METADATA_FILE).read_text())

    def load(self, version: str | None = None, runtime: str | None = None):
        """Load (and verify) a version, the champion by default; ``runtime`` onnx/keras/auto (see ``load_bundle``)."""
        version = version or self.champion()
        if version is None:
            raise BundleError(f"registry {self.base} has no champion yet: train a model first")
        return load_bundle(self.path(version), runtime)

    # -- writing -------------------------------------------------------------------------
    def publish(self, write: Callable[[Path], Any], details: dict[str, Any] | None = None) -> str:
        """Call ``write(tmpdir)`` to fill a new bundle, verify it, and give it the next version."""
        self.base.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=".incoming-", dir=self.base))
        try:
            bundle_dir = scratch / "bundle"
            write(bundle_dir)
            verify_bundle(bundle_dir)
            while True:
                version = str(int(max(self.versions(), key=int, default="0")) + 1)
                try:
                    os.rename(bundle_dir, self.path(version))  # fails if a concurrent publisher took it
                    break
                except OSError:
                    if not self.path(version).exists():
                        raise
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        self._record("published", version, details=details or {})
        return version

    def promote(self, version: str, reason: str = "") -> None:
        version = str(version)
        verify_bundle(self.path(version))
        previous = self.champion()
        self._point_champion(version, previous)
        self._record("promoted", version, reason, {"previous": previous})

    def reject(self, version: str, reason: str) -> None:
        self._record("rejected", str(version), reason)

    def rollback(self, reason: str = "manual rollback") -> str:
        """Make the previous champion champion again; return its version."""
        current = self.champion()
        promotions = [e.version for e in self.history() if e.event in ("promoted", "rolled_back")]
        candidates = [v for v in reversed(promotions) if v != current and self.path(v).exists()]
        if not candidates:
            raise BundleError("no earlier champion to roll back to")
        target = candidates[0]
        verify_bundle(self.path(target))
        self._point_champion(target, current)
        self._record("rolled_back", target, reason, {"from": current})
        return target

    # -- calibration transfers, one active per analyzer --------------------------------------
    def transfer_path(self, analyzer: str, number: str) -> Path:
        return self.base / TRANSFERS_DIR / analyzer / str(number)

    def active_transfers(self) -> dict[str, str]:
        """Analyzer -> number of its active transfer artifact (pointers only: nothing verified or loaded)."""
        root = self.base / TRANSFERS_DIR
        active = {}
        for pointer in sorted(root.glob(f"*/{ACTIVE_TRANSFER_FILE}")) if root.is_dir() else []:
            try:
                active[pointer.parent.name] = str(json.loads(pointer.read_text())["number"])
            except (ValueError, KeyError, TypeError) as exc:
                raise BundleError(f"{pointer} is unreadable: {exc}") from None
        return active

    def load_transfer(self, analyzer: str, number: str | None = None):
        """Verify and load an analyzer's transfer (its active one by default); None if it has none."""
        from nirstream.core.transfer import load_transfer

        number = number or self.active_transfers().get(analyzer)
        return None if number is None else load_transfer(self.transfer_path(analyzer, number))

    def publish_transfer(self, transfer, reason: str = "") -> str:
        """Write a transfer artifact as the analyzer's next number, verify it, make it the active one."""
        from nirstream.core.transfer import load_transfer, write_transfer

        folder = self.base / TRANSFERS_DIR / transfer.analyzer
        folder.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=".incoming-", dir=folder))
        try:
            write_transfer(scratch / "transfer", transfer)
            load_transfer(scratch / "transfer")
            numbers = [int(p.name) for p in folder.iterdir() if p.is_dir() and p.name.isdigit()]
            number = str(max(numbers, default=0) + 1)
            os.rename(scratch / "transfer", folder / number)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        write_atomically(folder / ACTIVE_TRANSFER_FILE, json.dumps({"number": number, "at": utc_now().isoformat()}))
        meta = transfer.metadata
        self._record("transfer_published", meta.model_version, reason,
                     {"analyzer": meta.analyzer, "number": number, "method": meta.method, "by": meta.by,
                      "standards": len(meta.standards)})
        return number

    def _point_champion(self, version: str, previous: str | None) -> None:
        payload = json.dumps({"version": version, "previous": previous, "at": utc_now().isoformat()})
        write_atomically(self.base / CHAMPION_FILE, payload)

    def _record(self, event: str, version: str, reason: str = "", details: dict[str, Any] | None = None) -> None:
        entry = RegistryEvent(event=event, version=version, reason=reason, at=utc_now().isoformat(), details=details or {})
        with (self.base / HISTORY_FILE).open("a") as out:
            out.write(entry.model_dump_json() + "\n")
