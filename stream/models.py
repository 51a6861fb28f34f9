"""Which model serves: loads champions in the background and swaps them in between batches.

The batch loop reads ``holder.current`` once per batch, so a swap always lands on a batch
boundary. A bundle that fails verification is refused (metric + log) and the old model keeps
serving. The previous model is kept so that a rollback swaps back instantly.
"""

from __future__ import annotations

import asyncio
import logging

from nirstream.core.bundle import BundleError
from nirstream.core.predictor import Predictor
from nirstream.core.registry import ModelRegistry
from stream.metrics import WorkerMetrics

log = logging.getLogger(__name__)


class ModelHolder:
    def __init__(self, registry: ModelRegistry, metrics: WorkerMetrics):
        self.registry = registry
        self.metrics = metrics
        self.current: Predictor | None = None
        self.previous: Predictor | None = None
        self.last_error: str | None = None
        self._lock = asyncio.Lock()
        self.changed = asyncio.Event()

    @property
    def version(self) -> str | None:
        return self.current.version if self.current else None

    async def sync_with_champion(self) -> bool:
        """Serve the registry's champion; return True if the model changed."""
        try:
            wanted = self.registry.champion()
        except BundleError as exc:
            self._refuse("champion_pointer", str(exc))
            return False
        if wanted is None or wanted == self.version:
            return False
        return await self.switch_to(wanted)

    async def switch_to(self, version: str) -> bool:
        async with self._lock:
            if version == self.version:
                return False
            if self.previous is not None and self.previous.version == version:
                candidate = self.previous  # rollback: already loaded and warm
            else:
                try:
                    candidate = await asyncio.to_thread(self._load, version)
                except BundleError as exc:
                    self._refuse("verification", str(exc))
                    return False
                except Exception as exc:  # a model that loads but cannot run
                    self._refuse("load", f"{type(exc).__name__}: {exc}")
                    return False
            self.previous, self.current = self.current, candidate
            self.last_error = None
            self.metrics.set_model(candidate.version, candidate.target)
            if self.previous is not None:
                self.metrics.model_swaps.inc()
            log.info("serving model version %s (previous %s)", candidate.version, self.previous and self.previous.version)
            self.changed.set()
            return True

    def _load(self, version: str) -> Predictor:
        predictor = Predictor(self.registry.load(version))
        predictor.warm_up()
        return predictor

    def _refuse(self, reason: str, detail: str) -> None:
        if detail == self.last_error:
            return  # the fallback poll finds the same bad bundle again: count and log it once
        log.error("model refused (%s): %s; still serving %s", reason, detail, self.version)
        self.last_error = detail
        self.metrics.model_swap_failures.labels(reason=reason).inc()
