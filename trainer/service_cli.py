"""``nirstream trainer``: the learning loop's long-running service."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    service = subparsers.add_parser(
        "trainer",
        help="the learning loop: archive every lab-labelled spectrum, retrain when due, gate on the newest lab values",
        description=(
            "Consume the labelled topic with the trainer's own consumer group and archive every pair in the plant data "
            "store (SQLite; one row per message id, whatever is killed). When the retraining policy says so (N new lab "
            "values since the champion, or an analyzer's significant bias; never more often than every T minutes), run "
            "one retrain in a time-limited child process: the base training data plus the stored pairs except the "
            "newest, which judge candidate against champion (paired bootstrap); a passing candidate is proposed for "
            "`nirstream models approve` (default, GMP change control) or promoted (gate.mode = automatic). Settings: "
            "NIRSTREAM_* environment and an optional TOML file ([retrain], [gate], [base_training] tables). Serves "
            "/metrics, /health and /ready on the web port (default 6067)."
        ),
    )
    service.add_argument("--config", help="TOML settings file (see docs/learning-loop.md)")
    service.add_argument("--bootstrap-servers", help="Kafka bootstrap servers (NIRSTREAM_BOOTSTRAP_SERVERS)")
    service.add_argument("--registry", help="model registry directory (NIRSTREAM_REGISTRY)")
    service.add_argument("--store", help="plant data store, a SQLite file (NIRSTREAM_STORE; default plant-data/pairs.sqlite)")
    service.add_argument("--web-port", type=int, help="port for /metrics, /health, /ready (NIRSTREAM_WEB_PORT)")
    service.set_defaults(handler=_trainer_service)


def _trainer_service(args: argparse.Namespace) -> int:
    import asyncio
    import signal

    from nirstream.kafka.connection_check import check_kafka_security
    from nirstream.trainer.service import TrainerService
    from nirstream.trainer.service_settings import TrainerServiceSettings

    overrides = {k: v for k, v in {"bootstrap_servers": args.bootstrap_servers, "registry": args.registry,
                                   "store": args.store, "web_port": args.web_port}.items() if v is not None}
    settings = TrainerServiceSettings.load(args.config, **overrides)
    check_kafka_security(settings)

    async def serve() -> None:
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        await TrainerService(settings, args.config, overrides).run(stop)

    asyncio.run(serve())
    return 0
