"""The faust application: lifecycle, web endpoints (/metrics, /health, /ready) and services."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import faust
from faust.app.base import BootStrategy
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from nirstream.core.artifacts.registry import ModelRegistry
from nirstream.core.artifacts.signing import configured_trust
from nirstream.stream.consumer import BatchConsumer
from nirstream.stream.metrics import WorkerMetrics
from nirstream.stream.model_holder import ModelHolder
from nirstream.stream.settings import Settings
from nirstream.stream.model_watcher import ModelWatcher


def faust_credentials(settings: Settings):
    """faust's form of the same security settings; the SSL context is the one every other client gets."""
    sec = settings.security
    options = settings.kafka_client_options()
    if sec.protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=sec.sasl_username,
            password=sec.sasl_password.get_secret_value() if sec.sasl_password else None,
            mechanism=sec.sasl_mechanism or "PLAIN",
            ssl_context=options.get("ssl_context"),
        )
    if sec.protocol == "SSL":
        return faust.SSLCredentials(options["ssl_context"])
    return None


class _BatchReaderBoot(BootStrategy):
    # Spectra and lab values are read in batches by BatchConsumer (aiokafka), not by faust's
    # per-event consumer, which would only add a second group join and ~170 µs per message.
    enable_kafka_consumer = False


class WorkerApp(faust.App):
    BootStrategy = _BatchReaderBoot


def create_app(settings: Settings) -> faust.App:
    # faust creates a data directory even for in-memory tables; keep it out of the working directory
    faust_dir = Path(tempfile.gettempdir()) / "nirstream-faust"
    faust_dir.mkdir(exist_ok=True)
    app = WorkerApp(
        f"{settings.group_id}-app",
        broker=[f"kafka://{server.strip()}" for server in settings.bootstrap_servers.split(",")],
        broker_credentials=faust_credentials(settings),
        store="memory://",
        datadir=str(faust_dir / "{conf.id}"),
        autodiscover=False,
        topic_disable_leader=True,
        broker_session_timeout=settings.session_timeout_ms / 1000,
        broker_heartbeat_interval=settings.heartbeat_interval_ms / 1000,
        web_enabled=True,
        web_bind=settings.web_host,
        web_port=settings.web_port,
        web_in_thread=False,
    )
    metrics = WorkerMetrics(max_analyzer_labels=settings.max_analyzer_labels)
    # the worker reads the registry only: it verifies, it never signs (docs/security.md)
    trust = configured_trust(settings.trusted_keys_dir, settings.allow_unsigned)
    holder = ModelHolder(ModelRegistry(settings.registry, trust=trust), metrics)
    batch_consumer = BatchConsumer(settings, metrics, holder)
    watcher = ModelWatcher(settings, holder)
    app.nirstream = {"metrics": metrics, "holder": holder, "consumer": batch_consumer, "watcher": watcher}

    @app.task
    async def _start_services() -> None:
        await app.add_runtime_dependency(watcher)
        await app.add_runtime_dependency(batch_consumer)

    @app.page("/metrics")
    async def metrics_view(web, request):
        # aiohttp refuses a charset inside content_type, so the exposition type goes in the header
        return web.bytes(generate_latest(metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    @app.page("/health")
    async def health_view(web, request):
        return web.json({"status": "alive", "model_version": holder.version})

    @app.page("/ready")
    async def ready_view(web, request):
        # versions and reasons only: the refusal's detail names registry paths, which stay in the log
        body = {"ready": batch_consumer.ready, "model_version": holder.version,
                "previous_version": holder.previous and holder.previous.version, "last_refusal": holder.last_refusal}
        return web.json(body, status=200 if batch_consumer.ready else 503)

    return app


def run_worker(settings: Settings, loglevel: str = "info") -> None:
    """Run until SIGTERM/SIGINT; faust's worker handles signals and a graceful stop."""
    from nirstream.core.runtimes.cpu_threads import serve_with_one_blas_thread

    serve_with_one_blas_thread()
    # The batch thread (consumer.py) and the event loop share the GIL: a short switch interval lets the loop take
    # acknowledgements and fetches while a batch is decoded, instead of waiting up to the default 5 ms each time.
    sys.setswitchinterval(0.0005)
    app = create_app(settings)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()
