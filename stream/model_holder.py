"""Which model serves: loads champions in the background and swaps them in between batches.

The batch loop reads ``holder.current`` once per batch, so a swap always lands on a batch
boundary. A bundle that fails verification is refused (metric + log) and the old model keeps
serving. The previous model is kept so that a rollback swaps back instantly.

With the registry's ``trust`` enforced (``allow_unsigned`` off) a champion is loaded only when the audit trail
accounts for its pointer (``ModelRegistry.audited_champion``) and its signature verifies against a trusted key;
pointer files must name plain integers. Refusal reasons (``nirstream_model_swap_failures_total{reason}``):
``unsigned``, ``untrusted_key``, ``bad_signature``, ``pointer_version``, ``audit`` (alert NirstreamUntrustedModel),
and ``verification``, ``load``, ``grid_mismatch``, ``champion_pointer``, ``transfer``, ``transfer_pointer``.
"""

from __future__ import annotations

import asyncio
import logging

from nirstream.core.artifacts.bundle import BundleError
from nirstream.core.artifacts.manifest import SIGNATURE_FILE
from nirstream.core.extras import needs_training_install, training_install_hint
from nirstream.core.artifacts.signing import SignatureError
from nirstream.core.serving.predictor import Predictor
from nirstream.core.artifacts.registry import ModelRegistry
from nirstream.stream.metrics import WorkerMetrics

log = logging.getLogger(__name__)


class ModelHolder:
    def __init__(self, registry: ModelRegistry, metrics: WorkerMetrics):
        self.registry = registry
        self.metrics = metrics
        self.current: Predictor | None = None
        self.previous: Predictor | None = None
        self.last_error: str | None = None  # for the log: names files of the registry
        self.last_refusal: dict[str, str | None] | None = None  # for /ready: reason and version, no paths
        self.refused_versions: set[str] = set()
        self.transfers: dict = {}  # analyzer -> CalibrationTransfer in service
        self.refused_transfers: set[tuple[str, str]] = set()
        self._audit_warning: str | None = None
        self._lock = asyncio.Lock()

    @property
    def version(self) -> str | None:
        return self.current.version if self.current else None

    async def sync_with_champion(self) -> bool:
        """Serve the registry's champion with each analyzer's active calibration transfer; True if the model changed."""
        changed = await self._sync_model()
        await self._sync_transfers()
        return changed

    async def _sync_transfers(self) -> None:
        """Load analyzers' newly activated transfers (verified; a refused one leaves the analyzer's previous in place)
        and swap them in with the model at a batch boundary."""
        try:
            active = self.registry.active_transfers()
        except BundleError as exc:
            self._refuse(getattr(exc, "reason", "transfer_pointer"), str(exc))
            return
        wanted, changed = dict(self.transfers), False
        for analyzer, number in active.items():
            current = self.transfers.get(analyzer)
            if (current is not None and current.path is not None and current.path.name == number) \
                    or (analyzer, number) in self.refused_transfers:
                continue
            try:
                wanted[analyzer] = await asyncio.to_thread(self.registry.load_transfer, analyzer, number)
            except Exception as exc:  # noqa: BLE001 - tampered, untrusted or unreadable: refuse, keep serving
                self.refused_transfers.add((analyzer, number))
                self._refuse(getattr(exc, "reason", "transfer"), f"transfer {number} of analyzer {analyzer}: {exc}")
                continue
            self._warn_if_unsigned(self.registry.transfer_path(analyzer, number), f"transfer {number} of {analyzer}")
            changed = True
            log.info("analyzer %s: calibration transfer %s (%s) in service", analyzer, number, wanted[analyzer].metadata.method)
        if not changed:
            return
        async with self._lock:
            self.transfers = wanted
            if self.current is not None:
                self.current = self.current.with_transfers(wanted)

    async def _sync_model(self) -> bool:
        try:  # off the event loop: the audit check reads and hashes the whole trail at every poll
            wanted = await asyncio.to_thread(self._wanted_champion)
        except BundleError as exc:  # the pointer or the audit trail, not a version: refused, not remembered as refused
            self._refuse(getattr(exc, "reason", "champion_pointer"), str(exc))
            return False
        if wanted is None:
            if self.current is not None:
                self._refuse("champion_pointer", f"{self.registry.base} has no champion pointer; keeping version {self.version}")
            return False
        if wanted == self.version or wanted in self.refused_versions:
            return False  # versions are immutable: one refused stays refused (no reload every poll)
        return await self.switch_to(wanted)

    def _wanted_champion(self) -> str | None:
        """The champion pointer's version; audited (``AuditMismatch`` refuses it) unless unsigned trials are allowed,
        where a mismatch is only logged."""
        trust = self.registry.trust
        if trust is None:
            return self.registry.champion()
        try:
            return self.registry.audited_champion()
        except BundleError as exc:
            if not trust.allow_unsigned or getattr(exc, "reason", "") != "audit":
                raise
            if str(exc) != self._audit_warning:  # once per problem, not every poll
                log.warning("allow_unsigned: a champion the audit trail does not account for is accepted: %s", exc)
                self._audit_warning = str(exc)
            return self.registry.champion()

    def _warn_if_unsigned(self, artifact, what: str) -> None:
        if not (artifact / SIGNATURE_FILE).exists():
            log.warning("UNSIGNED %s in service (allow_unsigned is set): anyone who can write the registry can change "
                        "what this worker predicts", what)

    async def switch_to(self, version: str) -> bool:
        async with self._lock:
            if version == self.version:
                return False
            if self.previous is not None and self.previous.version == version:
                candidate = self.previous  # rollback: already loaded and warm
            else:
                try:
                    candidate = await asyncio.to_thread(self._load, version)
                except SignatureError as exc:
                    return self._refuse(exc.reason, str(exc), version)
                except BundleError as exc:
                    return self._refuse(getattr(exc, "reason", "verification"), str(exc), version)
                except ModuleNotFoundError as exc:
                    if not needs_training_install(exc):
                        raise
                    # a bundle without model.onnx in a serving-only install: the Keras runtime is not there
                    return self._refuse("load", training_install_hint(f"model version {version}", exc), version)
                except Exception as exc:  # a model that loads but cannot run
                    return self._refuse("load", f"{type(exc).__name__}: {exc}", version)
            if self.current is not None and candidate.grid != self.current.grid:
                # Analyzers keep sending the grid they send: a model for another grid would dead-letter everything.
                detail = f"version {version} expects grid {candidate.grid}, analyzers send {self.current.grid}"
                return self._refuse("grid_mismatch", detail, version)
            self.previous, self.current = self.current, candidate.with_transfers(self.transfers)
            self.last_error = self.last_refusal = None
            self.metrics.set_model(candidate.version, candidate.targets, candidate.bundle.metadata.created_at.timestamp(),
                                   candidate.intervals)
            if self.previous is not None:
                self.metrics.model_swaps.inc()
            log.info("serving model version %s (previous %s)", candidate.version, self.previous and self.previous.version)
            self._warn_if_unsigned(self.registry.path(candidate.version), f"model version {candidate.version}")
            return True

    def _load(self, version: str) -> Predictor:
        predictor = Predictor(self.registry.load(version))
        predictor.warm_up()
        return predictor

    def _refuse(self, reason: str, detail: str, version: str | None = None) -> bool:
        """Record why a model (or the pointer) was refused; the current model keeps serving. Returns False."""
        if version is not None:
            self.refused_versions.add(version)
        if detail == self.last_error:
            return False  # the fallback poll finds the same problem again: count and log it once
        log.error("model refused (%s): %s; still serving %s", reason, detail, self.version)
        self.last_error = detail
        self.last_refusal = {"reason": reason, "version": version}
        self.metrics.model_swap_failures.labels(reason=reason).inc()
        return False
