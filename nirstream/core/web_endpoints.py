"""The HTTP endpoints of a long-running service without a web framework of its own (the trainer service, the OPC UA
server, the file bridge): ``/health`` (alive), ``/ready`` (200 or 503 with a small JSON body: versions and counts,
never file paths) and ``/metrics`` (Prometheus text of one registry). The worker serves the same three through faust.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

Readiness = Callable[[], dict]  # a JSON-able body whose "ready" key says 200 or 503


def endpoints_app(registry: CollectorRegistry, readiness: Readiness) -> web.Application:
    async def health(_request):
        return web.json_response({"status": "alive"})

    async def ready(_request):
        body = readiness()
        return web.json_response(body, status=200 if body["ready"] else 503)

    async def metrics(_request):
        return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.add_routes([web.get("/health", health), web.get("/ready", ready), web.get("/metrics", metrics)])
    return app


async def start_endpoints(host: str, port: int, registry: CollectorRegistry, readiness: Readiness) -> web.AppRunner:
    """Listen on ``host:port``; the caller ends it with ``await runner.cleanup()``."""
    runner = web.AppRunner(endpoints_app(registry, readiness), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:  # the port is taken: a clear error, not a traceback
        await runner.cleanup()
        raise ValueError(f"cannot serve /metrics on {host}:{port}: {exc}") from None
    return runner
