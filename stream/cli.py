"""``nirstream worker``."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    worker = subparsers.add_parser(
        "worker",
        help="run the stream worker: spectra topic -> EMSC + CNN -> predictions / dead letters",
        description=(
            "Consume spectra (JSON or binary) in micro-batches, predict with the registry's champion model, "
            "publish predictions and dead letters, hot-swap new champions. Settings come from NIRSTREAM_* "
            "environment variables and an optional TOML file; flags override both. "
            "Serves /metrics, /health and /ready on the web port."
        ),
    )
    worker.add_argument("--config", help="TOML settings file (see README: Configuration)")
    worker.add_argument("--bootstrap-servers", help="Kafka bootstrap servers (NIRSTREAM_BOOTSTRAP_SERVERS)")
    worker.add_argument("--registry", help="model registry directory (NIRSTREAM_REGISTRY)")
    worker.add_argument("--group-id", help="consumer group (NIRSTREAM_GROUP_ID)")
    worker.add_argument("--max-batch-size", type=int, help="most spectra per model call (NIRSTREAM_MAX_BATCH_SIZE)")
    worker.add_argument("--batch-timeout-ms", type=int, help="longest wait to fill a batch (NIRSTREAM_BATCH_TIMEOUT_MS)")
    worker.add_argument("--web-port", type=int, help="port for /metrics, /health, /ready (NIRSTREAM_WEB_PORT)")
    worker.add_argument("--loglevel", default="info", choices=["debug", "info", "warning", "error"])
    worker.set_defaults(handler=_worker)


def _worker(args: argparse.Namespace) -> int:
    from stream.app import run_worker
    from stream.settings import Settings

    settings = Settings.load(
        args.config,
        bootstrap_servers=args.bootstrap_servers,
        registry=args.registry,
        group_id=args.group_id,
        max_batch_size=args.max_batch_size,
        batch_timeout_ms=args.batch_timeout_ms,
        web_port=args.web_port,
    )
    run_worker(settings, loglevel=args.loglevel)
    return 0
