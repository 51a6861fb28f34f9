"""``nirstream ingest``: the analyzer file bridge."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nirstream.ingest import ONCE_ATTEMPTS, ONCE_SEND_ATTEMPTS


def register(subparsers: argparse._SubParsersAction) -> None:
    ingest = subparsers.add_parser(
        "ingest",
        help="analyzer file bridge: publish each spectrum file (JCAMP-DX or CSV) an analyzer writes to a folder, once",
        description=(
            "Watch a folder an analyzer writes one spectrum file per measurement to (JCAMP-DX or a "
            "wavelength_nm,value CSV), publish each complete file once, in order (modification time, then name), "
            "to the spectra topic as a binary spectrum message keyed by the analyzer id, and move it to "
            "DIR/published/. Unusable files go to DIR/rejected/ with NAME.reason.txt beside them; the bridge goes on. "
            "Sample id: JCAMP ##$SAMPLE ID or the CSV's sample_id column, else the file name without its suffix. "
            "The folder is polled (network shares give no inotify events); a file is taken once its size and "
            "modification time stayed the same for one poll, or at once when it is older than --settle-seconds. "
            "State on disk survives restarts: nothing is skipped; the one file in flight at a crash, and a send "
            "retried after a timeout or a lost acknowledgement, may arrive twice, as the same message (same "
            "message_id and sequence). Symbolic links are rejected, never followed. "
            "Kafka connection, SASL/TLS and the message size limit (NIRSTREAM_MAX_MESSAGE_BYTES, as the worker's) come "
            "from NIRSTREAM_* settings (see docs/configuration.md)."
        ),
    )
    ingest.add_argument("--watch", required=True, metavar="DIR", help="folder the analyzer writes its files to")
    ingest.add_argument("--analyzer", required=True, metavar="ID", help="analyzer id: the message key and analyzer_id")
    ingest.add_argument("--format", required=True, choices=["jcamp", "csv"], dest="file_format",
                        help="jcamp: .jdx/.dx/.jcamp files; csv: .csv files with header wavelength_nm,value[,sample_id]")
    ingest.add_argument("--bootstrap-servers", help="Kafka bootstrap servers (default $NIRSTREAM_BOOTSTRAP_SERVERS)")
    ingest.add_argument("--config", dest="shared_config", type=Path, metavar="FILE", help="TOML settings file: Kafka connection, security, topics, registry (the [security]/[topics] of the worker's file; docs/configuration.md)")
    ingest.add_argument("--topic", help="default $NIRSTREAM_TOPICS__SPECTRA or nirstream.spectra")
    ingest.add_argument("--poll-seconds", type=float, default=2.0, help="how often the folder is listed (default 2)")
    ingest.add_argument("--settle-seconds", type=float, default=60.0,
                        help="a file last modified longer ago than this is complete at first sight (default 60)")
    ingest.add_argument("--state-dir", help="where the state file lives (default DIR/.nirstream-ingest)")
    ingest.add_argument("--once", action="store_true",
                        help="publish what is in the folder, then exit (tests, cron); exit 1 when a file stayed "
                             f"unreadable (or the folder unlistable) for {ONCE_ATTEMPTS} polls, or incomplete (still "
                             f"changing, or empty) for --settle-seconds plus {ONCE_ATTEMPTS} polls, naming it, or the "
                             f"broker was unreachable for {ONCE_SEND_ATTEMPTS} sends of one file (it stays for the "
                             "next run)")
    ingest.add_argument("--expect-grid", metavar="START:STEP:COUNT",
                        help="reject files on another wavelength grid (nm), e.g. 600:2:650; default: any regular grid")
    ingest.add_argument("--max-file-bytes", type=int, default=16 << 20, help="reject larger files (default 16 MiB)")
    ingest.add_argument("--metrics-port", type=int,
                        help="serve /metrics, /health and /ready on this port (nirstream_ingest_*: files published, "
                             "rejected, waiting); default: none")
    ingest.add_argument("--metrics-host", default="127.0.0.1",
                        help="address of --metrics-port (default 127.0.0.1; 0.0.0.0 for a Prometheus elsewhere)")
    ingest.set_defaults(handler=_ingest)


def _grid(text: str):
    from nirstream.core.messages.common import WavelengthGrid

    try:
        start, step, count = text.split(":")
        return WavelengthGrid(start_nm=float(start), step_nm=float(step), count=int(count))
    except ValueError:  # wrong shape, not numbers, or not a valid grid (pydantic's error is a ValueError)
        raise ValueError(f"--expect-grid {text!r}: expected START:STEP:COUNT in nm, e.g. 600:2:650") from None


def _ingest(args: argparse.Namespace) -> int:
    import asyncio
    import re
    import signal
    from pathlib import Path

    from nirstream.core.messages.common import ANALYZER_ID_PATTERN
    from nirstream.core.settings import SharedSettings
    from nirstream.core.web_endpoints import start_endpoints
    from nirstream.ingest.bridge import BridgeConfig, FileBridge
    from nirstream.ingest.publisher import SpectrumPublisher
    from nirstream.kafka.connection_check import check_kafka_security

    if not re.fullmatch(ANALYZER_ID_PATTERN, args.analyzer):
        raise ValueError(f"--analyzer {args.analyzer!r}: letters, digits and _.:- only, at most 64 characters")
    if args.poll_seconds <= 0 or args.settle_seconds < 0 or args.max_file_bytes <= 0:
        raise ValueError("--poll-seconds and --max-file-bytes must be positive, --settle-seconds not negative")
    shared = SharedSettings.load(bootstrap_servers=args.bootstrap_servers)
    check_kafka_security(shared)
    config = BridgeConfig(
        folder=Path(args.watch), analyzer_id=args.analyzer, file_format=args.file_format,
        topic=args.topic or shared.topics.spectra, state_dir=Path(args.state_dir) if args.state_dir else None,
        poll_seconds=args.poll_seconds, settle_seconds=args.settle_seconds, once=args.once,
        expected_grid=_grid(args.expect_grid) if args.expect_grid else None, max_file_bytes=args.max_file_bytes,
        max_message_bytes=shared.max_message_bytes)

    async def main():
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):  # finish the file in hand, then stop
            loop.add_signal_handler(sig, stop.set)
        publisher = SpectrumPublisher(shared.kafka_producer_options(), config.topic, stop,
                                      attempts=ONCE_SEND_ATTEMPTS if config.once else None)
        bridge = FileBridge(config, publisher, stop)
        if args.metrics_port is None:
            return await bridge.run()
        endpoints = await start_endpoints(args.metrics_host, args.metrics_port, bridge.metrics.registry, lambda: {
            "ready": bridge.state is not None, "published": len(bridge.summary.published),
            "rejected": len(bridge.summary.rejected)})
        try:
            return await bridge.run()
        finally:
            await endpoints.cleanup()

    summary = asyncio.run(main())
    print(f"published {len(summary.published)} file(s), rejected {len(summary.rejected)}", flush=True)
    if summary.incomplete:
        print(f"nirstream: error: {summary.incomplete}", file=sys.stderr)
        return 1
    return 0
