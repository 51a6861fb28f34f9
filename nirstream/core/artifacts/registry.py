"""File-system model registry, TF Serving style: ``base/<version>/`` bundles plus a champion pointer.

* publish: the bundle is written into a hidden temporary directory, then renamed to the next
  integer version (rename is atomic, so a reader never sees half a bundle);
* the ``champion.json`` pointer is replaced atomically (write temp file, ``os.replace``);
* every event (published, promoted, rejected, rolled back, transfer published) is appended to ``history.jsonl``
  with who, when, why and the artifact's checksum: a hash-chained audit trail with its ``history.head`` anchor
  (``nirstream/core/audit.py``), written under a file lock so that concurrent writers keep one chain;
* with a ``signer`` every published bundle and transfer is signed before it appears (``signing.py``); with a
  ``trust`` every load checks the signature; versions in pointer files are plain integers, nothing else.

Works without Kafka; announcing promotions to running workers is the caller's business.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from nirstream.core.artifacts.atomic_files import write_atomically
from nirstream.core.artifacts.audit import AuditAppender, AuditLog, current_actor
from nirstream.core.artifacts.bundle import METADATA_FILE, BundleError, BundleMetadata, load_bundle, verify_bundle
from nirstream.core.artifacts.manifest import MANIFEST_FILE, manifest_checksum
from nirstream.core.artifacts.signing import ArtifactSigner, ArtifactTrust
from nirstream.core.messages.common import utc_now

CHAMPION_FILE = "champion.json"
HISTORY_FILE = "history.jsonl"
TRANSFERS_DIR = "transfers"  # transfers/<analyzer>/<n>/ artifacts and transfers/<analyzer>/active.json
ACTIVE_TRANSFER_FILE = "active.json"
POINTER_EVENTS = ("promoted", "rolled_back")  # the events that move the champion pointer

log = logging.getLogger(__name__)


class PointerError(BundleError):
    """A pointer file naming something other than a plain non-negative integer (``"../.."``, ``"1/../x"``, 1.5)."""

    reason = "pointer_version"


class AuditMismatch(BundleError):
    """A champion pointer the audit trail does not account for, or an audit trail that does not verify."""

    reason = "audit"


def plain_number(value: Any, where: str) -> str:
    """``value`` as a registry number: a non-negative integer written plainly (``3`` or ``"3"``, not ``"03"``,
    ``"3.0"``, ``"../.."``): it names a folder, so anything else could name a folder outside the registry."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    if isinstance(value, str) and value.isascii() and value.isdigit() and str(int(value)) == value:
        return value
    raise PointerError(f"{where}: {value!r} is not a plain non-negative integer: refused")


class RegistryEvent(BaseModel):
    """One line of ``history.jsonl``. Lines from before the audit trail lack ``by``, ``checksum``, ``prev``, ``hash``."""

    event: str  # published | proposed | promoted | rejected | rolled_back | transfer_published
    version: str  # the model version (a transfer's: the model it was fitted with; analyzer and number in details)
    reason: str = ""
    at: str = ""  # UTC, ISO 8601
    by: str = ""  # --by, else NIRSTREAM_USER, else user@host
    checksum: str = ""  # sha256 of the artifact's MANIFEST.json (bundle or transfer)
    details: dict[str, Any] = {}
    prev: str | None = None  # the previous record's hash (see nirstream/core/audit.py)
    hash: str | None = None  # sha256 of this record's canonical JSON without ``hash``

    @property
    def legacy(self) -> bool:
        return self.hash is None


class ModelRegistry:
    """``signer``: signs what ``publish``/``publish_transfer`` write. ``trust``: what ``load``, ``metadata`` and
    ``load_transfer`` accept (None: checksums only, as the trainer reads its own registry)."""

    def __init__(self, base: str | Path, signer: ArtifactSigner | None = None, trust: ArtifactTrust | None = None):
        self.base = Path(base)
        self.audit = AuditLog(self.base / HISTORY_FILE)  # the history is the audit trail: one log
        self.signer, self.trust = signer, trust

    # -- reading -------------------------------------------------------------------------
    def versions(self) -> list[str]:
        """Complete bundle versions, oldest first (hidden temporaries are ignored)."""
        if not self.base.is_dir():
            return []
        return sorted((p.name for p in self.base.iterdir() if p.is_dir() and p.name.isdigit()), key=int)

    def path(self, version: str) -> Path:
        return self.base / plain_number(version, "version")

    def champion(self) -> str | None:
        """The champion version, or None when nothing has been promoted (``PointerError``: not a plain integer)."""
        pointer = self.base / CHAMPION_FILE
        try:
            version = json.loads(pointer.read_text())["version"]
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as exc:
            raise BundleError(f"{pointer} is unreadable: {exc}") from None
        return plain_number(version, str(pointer))

    def audited_champion(self) -> str | None:
        """The champion, if the audit trail accounts for it, else ``AuditMismatch``: the chain and its anchor verify,
        the last promotion or rollback it records names this version, and (when recorded) this version's manifest
        checksum is the one recorded then. The pointer is read under the log's shared lock, so a promotion is seen
        with its record or not at all. What this cannot see: a writer who appends a well-formed record himself."""
        with self.audit.verified() as report:
            version = self.champion()
        if version is None:
            return None
        if not report.intact:
            raise AuditMismatch(f"{self.audit.path} does not verify ({report.problems[0].message}): champion version "
                                f"{version} refused")
        moves = [line for line in report.lines if line.fields is not None and line.fields.get("event") in POINTER_EVENTS]
        if not moves:
            raise AuditMismatch(f"{CHAMPION_FILE} names version {version}, but {self.audit.path.name} records no "
                                "promotion: the pointer was written outside the registry")
        last = moves[-1]
        if str(last.fields.get("version")) != version:
            raise AuditMismatch(f"{CHAMPION_FILE} names version {version}, but the audit trail's last promotion or "
                                f"rollback (line {last.number}) names version {last.fields.get('version')}: the pointer "
                                "was changed outside the registry")
        recorded = last.fields.get("checksum")
        if recorded and recorded != self._checksum(self.path(version)):
            raise AuditMismatch(f"version {version}'s {MANIFEST_FILE} is not the one recorded when it became champion "
                                f"(line {last.number}, {str(recorded)[:12]}): replaced after promotion")
        return version

    def history(self) -> list[RegistryEvent]:
        """Every event, oldest first (not verified: ``self.audit.verify()`` checks the chain).
        A record that is not an event (edited by hand) is skipped with a warning, as unreadable lines are."""
        events = []
        for line in self.audit.readable_lines():
            try:
                events.append(RegistryEvent.model_validate(line.fields))
            except ValidationError as exc:
                problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
                log.warning("%s line %d is not a registry event (%s): skipped (nirstream models history --verify)",
                            self.audit.path, line.number, problems)
        return events

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
        verify_bundle(self.path(version), self.trust)
        return BundleMetadata.model_validate_json((self.path(version) / METADATA_FILE).read_text())

    def load(self, version: str | None = None, runtime: str | None = None):
        """Load (and verify) a version, the champion by default; ``runtime`` onnx/keras/auto (see ``load_bundle``)."""
        version = version or self.champion()
        if version is None:
            raise BundleError(f"registry {self.base} has no champion yet: train a model first")
        return load_bundle(self.path(version), runtime, self.trust)

    # -- writing -------------------------------------------------------------------------
    def publish(self, write: Callable[[Path], Any], details: dict[str, Any] | None = None, by: str | None = None) -> str:
        """Call ``write(tmpdir)`` to fill a new bundle, verify it, and give it the next version."""

        def fill(bundle_dir: Path) -> None:
            write(bundle_dir)
            verify_bundle(bundle_dir)
            self._sign(bundle_dir)

        version = _place_numbered(self.base, fill)
        with self.audit.writing() as audit:
            self._record(audit, "published", version, "", by, self._checksum(self.path(version)), details or {})
        return version

    def promote(self, version: str, reason: str = "", by: str | None = None, details: dict[str, Any] | None = None) -> None:
        version = str(version)
        verify_bundle(self.path(version))
        with self.audit.writing() as audit:  # pointer and record under one lock: concurrent promotions stay in order
            previous = self.champion()
            # the record is complete before the pointer moves: a failure to build it leaves the champion as it was
            event = self._event("promoted", version, reason, by, self._checksum(self.path(version)),
                                {"previous": previous, **(details or {})})
            self._point_champion(version, previous)
            audit.append(event)

    def reject(self, version: str, reason: str, by: str | None = None, details: dict[str, Any] | None = None) -> None:
        version = str(version)
        with self.audit.writing() as audit:
            self._record(audit, "rejected", version, reason, by, self._checksum(self.path(version)), details)

    def propose(self, version: str, reason: str, by: str | None = None, details: dict[str, Any] | None = None) -> None:
        """Record that ``version`` passed a gate and waits for a named person's approval (``models approve``)."""
        version = str(version)
        with self.audit.writing() as audit:
            self._record(audit, "proposed", version, reason, by, self._checksum(self.path(version)), details)

    def rollback(self, reason: str = "manual rollback", by: str | None = None) -> str:
        """Make the previous champion champion again; return its version."""
        with self.audit.writing() as audit:
            current = self.champion()
            promotions = [str(r["version"]) for r in audit.records  # an edited record may lack its version: not a candidate
                          if r.get("event") in POINTER_EVENTS and _is_plain_number(r.get("version"))]
            candidates = [v for v in reversed(promotions) if v != current and self.path(v).exists()]
            if not candidates:
                raise BundleError("no earlier champion to roll back to")
            target = candidates[0]
            verify_bundle(self.path(target))
            event = self._event("rolled_back", target, reason, by, self._checksum(self.path(target)), {"from": current})
            self._point_champion(target, current)
            audit.append(event)
        return target

    # -- calibration transfers, one active per analyzer --------------------------------------
    def transfer_path(self, analyzer: str, number: str) -> Path:
        return self.base / TRANSFERS_DIR / analyzer / plain_number(number, f"transfer of {analyzer}")

    def active_transfers(self) -> dict[str, str]:
        """Analyzer -> number of its active transfer artifact (pointers only: nothing verified or loaded)."""
        root = self.base / TRANSFERS_DIR
        active = {}
        for pointer in sorted(root.glob(f"*/{ACTIVE_TRANSFER_FILE}")) if root.is_dir() else []:
            try:
                number = json.loads(pointer.read_text())["number"]
            except (ValueError, KeyError, TypeError) as exc:
                raise BundleError(f"{pointer} is unreadable: {exc}") from None
            active[pointer.parent.name] = plain_number(number, str(pointer))
        return active

    def load_transfer(self, analyzer: str, number: str | None = None):
        """Verify and load an analyzer's transfer (its active one by default); None if it has none."""
        from nirstream.core.artifacts.transfer import load_transfer

        number = number or self.active_transfers().get(analyzer)
        return None if number is None else load_transfer(self.transfer_path(analyzer, number), self.trust)

    def publish_transfer(self, transfer, reason: str = "", by: str | None = None) -> str:
        """Write a transfer artifact as the analyzer's next number, verify it, make it the active one.
        Who: ``by``, else the transfer's own ``metadata.by``, else the current actor."""
        from nirstream.core.artifacts.transfer import load_transfer, write_transfer

        def fill(transfer_dir: Path) -> None:
            write_transfer(transfer_dir, transfer)
            load_transfer(transfer_dir)
            self._sign(transfer_dir)

        folder = self.base / TRANSFERS_DIR / transfer.analyzer
        with self.audit.writing() as audit:  # numbering and activation in the lock: two fits for one analyzer stay apart
            number = _place_numbered(folder, fill)
            write_atomically(folder / ACTIVE_TRANSFER_FILE, json.dumps({"number": number, "at": utc_now().isoformat()}))
            meta = transfer.metadata
            self._record(audit, "transfer_published", meta.model_version, reason, by or meta.by or None,
                         self._checksum(folder / number),
                         {"analyzer": meta.analyzer, "number": number, "method": meta.method,
                          "standards": len(meta.standards)})
        return number

    def _sign(self, artifact: Path) -> None:
        """Sign a verified artifact before it gets its number, so that no reader ever sees it unsigned."""
        if self.signer is not None:
            self.signer.sign(artifact)

    def _point_champion(self, version: str, previous: str | None) -> None:
        payload = json.dumps({"version": version, "previous": previous, "at": utc_now().isoformat()})
        write_atomically(self.base / CHAMPION_FILE, payload)

    @staticmethod
    def _checksum(artifact: Path) -> str:
        """The artifact's manifest checksum ('' for a version whose folder is gone, e.g. rejected and deleted)."""
        return manifest_checksum(artifact) if (artifact / MANIFEST_FILE).exists() else ""

    @staticmethod
    def _record(audit: AuditAppender, event: str, version: str, reason: str, by: str | None, checksum: str,
                details: dict[str, Any] | None = None) -> None:
        audit.append(ModelRegistry._event(event, version, reason, by, checksum, details))

    @staticmethod
    def _event(event: str, version: str, reason: str, by: str | None, checksum: str,
               details: dict[str, Any] | None = None) -> dict[str, Any]:
        """An audit record's fields (chained by ``AuditAppender.append``)."""
        entry = RegistryEvent(event=event, version=version, reason=reason, at=utc_now().isoformat(), by=current_actor(by),
                              checksum=checksum, details=details or {})
        return json.loads(entry.model_dump_json(exclude={"prev", "hash"}))


def _is_plain_number(value: Any) -> bool:
    try:
        plain_number(value, "")
    except PointerError:
        return False
    return True


def _place_numbered(folder: Path, fill: Callable[[Path], Any]) -> str:
    """Have ``fill`` write (and check) an artifact in a hidden scratch directory inside ``folder``, then rename it to
    the next integer name there and return that name. The rename is atomic, so a reader never sees half an artifact;
    one that fails because a concurrent writer took the number tries the next."""
    folder.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".incoming-", dir=folder))
    try:
        artifact = scratch / "artifact"
        fill(artifact)
        while True:
            taken = [int(p.name) for p in folder.iterdir() if p.is_dir() and p.name.isdigit()]
            number = str(max(taken, default=0) + 1)
            try:
                os.rename(artifact, folder / number)
                return number
            except OSError:
                if not (folder / number).exists():
                    raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
