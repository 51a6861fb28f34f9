"""``nirstream opcua``: the OPC UA server (``opcua_server``) fed by the predictions topic (``prediction_feed``),
with a periodic check that turns values Bad when no newer prediction came within ``stale_seconds``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from nirstream.core.web_endpoints import start_endpoints
from nirstream.stream.metrics import OpcUaMetrics
from nirstream.stream.opcua_server import ProcessValueServer
from nirstream.stream.prediction_feed import PredictionFeed
from nirstream.stream.settings import OpcUaSettings

log = logging.getLogger(__name__)


class OpcUaService:
    """Server, feed and staleness check; ``ready`` is set once the server listens and the feed knows its offsets."""

    def __init__(self, settings: OpcUaSettings):
        self.settings = settings
        self.server = ProcessValueServer(settings.opcua)
        self.feed = PredictionFeed(settings, settings.opcua.max_batch_size)
        self.ready = asyncio.Event()
        self.metrics = OpcUaMetrics(self.server, self.feed, self.ready.is_set)

    def readiness(self) -> dict:
        return {"ready": self.ready.is_set(), "outputs": len(self.server.outputs),
                "stale_outputs": self.server.stale_outputs}

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set. The feed ends before that only on a bug: its error is raised, the process
        exits and its supervisor (compose: restart unless-stopped) starts it again."""
        await self.server.start()  # raises on bad security settings before anything else starts
        options = self.settings.opcua
        try:
            endpoints = await start_endpoints(options.web_host, options.web_port, self.metrics.registry, self.readiness)
        except BaseException:
            await self.server.stop()
            raise
        feed = asyncio.create_task(self.feed.run(self.server.publish, stop))
        helpers = [asyncio.create_task(self._check_staleness(stop)), asyncio.create_task(self._announce_ready()),
                   asyncio.create_task(stop.wait())]
        try:
            await asyncio.wait([feed, helpers[-1]], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.set()
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            try:
                await feed
            finally:
                await endpoints.cleanup()
                await self.server.stop()

    async def _announce_ready(self) -> None:
        await self.feed.ready.wait()
        self.ready.set()
        log.info("ready: OPC UA %s serves the predictions of %s; /metrics on %s:%d", self.settings.opcua.endpoint,
                 self.settings.topics.predictions, self.settings.opcua.web_host, self.settings.opcua.web_port)

    async def _check_staleness(self, stop: asyncio.Event) -> None:
        period = min(1.0, self.settings.opcua.stale_seconds / 4)  # a stale value turns Bad at most a quarter late
        while not stop.is_set():
            await asyncio.sleep(period)
            try:
                marked = await self.server.mark_stale()
            except Exception:  # noqa: BLE001 - the check runs again next period
                log.exception("marking stale values failed")
                continue
            if marked:
                log.warning("%d output(s) stale: no prediction for %g s", marked, self.settings.opcua.stale_seconds)


def run_opcua(settings: OpcUaSettings) -> None:
    """Serve until SIGINT or SIGTERM."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await OpcUaService(settings).run(stop)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
