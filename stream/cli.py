"""``nirstream worker`` and ``nirstream opcua``."""

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
    _add_settings_sources(worker)
    worker.add_argument("--registry", help="model registry directory (NIRSTREAM_REGISTRY)")
    worker.add_argument("--group-id", help="consumer group (NIRSTREAM_GROUP_ID)")
    worker.add_argument("--max-batch-size", type=int, help="most spectra per model call (NIRSTREAM_MAX_BATCH_SIZE)")
    worker.add_argument("--batch-timeout-ms", type=int, help="longest wait to fill a batch (NIRSTREAM_BATCH_TIMEOUT_MS)")
    worker.add_argument("--web-port", type=int, help="port for /metrics, /health, /ready (NIRSTREAM_WEB_PORT)")
    worker.add_argument("--loglevel", default="info", choices=["debug", "info", "warning", "error"])
    worker.set_defaults(handler=_worker)

    opcua = subparsers.add_parser(
        "opcua",
        help="OPC UA server for the control system: the latest prediction per analyzer and target as process values",
        description=(
            "Follow the predictions topic from its end and serve the latest prediction of every analyzer and target "
            "as OPC UA process values (address space after the Analyser Devices model: "
            "nirstream/<analyzer>/Channel1/<target>/Value, IntervalLow, IntervalHigh, ModelVersion, Flag), with "
            "the spectrum's measurement time as source timestamp and status Good, Uncertain (prediction flagged "
            "warning or outlier) or Bad (no newer prediction within --stale-seconds). Settings come from "
            "NIRSTREAM_* environment variables (NIRSTREAM_OPCUA__ENDPOINT ...; Kafka SASL/TLS as for the worker) "
            "and an optional TOML file ([opcua] table); flags override both. See docs/opcua.md."
        ),
    )
    _add_settings_sources(opcua)
    opcua.add_argument("--endpoint",
                       help="where to listen (NIRSTREAM_OPCUA__ENDPOINT; default opc.tcp://0.0.0.0:4840/nirstream/)")
    opcua.add_argument("--security-mode", choices=["None", "SignAndEncrypt"],
                       help="SignAndEncrypt (Basic256Sha256) for plants: needs --certificate, --private-key and "
                            "--trusted-clients; None only with --allow-insecure (NIRSTREAM_OPCUA__SECURITY_MODE; default None)")
    opcua.add_argument("--allow-insecure", action="store_true", default=None,
                       help="let security mode None serve: no authentication, no encryption; for a demo or a trial "
                            "(NIRSTREAM_OPCUA__ALLOW_INSECURE)")
    opcua.add_argument("--certificate", help="server certificate, PEM or DER; its subjectAltName URI becomes the "
                                             "server's application URI (NIRSTREAM_OPCUA__CERTIFICATE)")
    opcua.add_argument("--private-key", help="the certificate's private key, PEM or DER, unencrypted "
                                             "(NIRSTREAM_OPCUA__PRIVATE_KEY)")
    opcua.add_argument("--trusted-clients",
                       help="folder of client certificates (or their CA certificates) allowed to connect; required "
                            "with SignAndEncrypt (NIRSTREAM_OPCUA__TRUSTED_CLIENTS)")
    opcua.add_argument("--stale-seconds", type=float,
                       help="a value with no newer prediction for this long turns Bad (NIRSTREAM_OPCUA__STALE_SECONDS; "
                            "default 60)")
    opcua.add_argument("--namespace-uri", help="namespace of nirstream's nodes (NIRSTREAM_OPCUA__NAMESPACE_URI; "
                                               "default urn:nirstream)")
    opcua.add_argument("--web-port", type=int, help="port for /metrics, /health, /ready (NIRSTREAM_OPCUA__WEB_PORT; "
                                                    "default 6068)")
    opcua.add_argument("--loglevel", default="info", choices=["debug", "info", "warning", "error"])
    opcua.set_defaults(handler=_opcua)


def _add_settings_sources(parser: argparse.ArgumentParser) -> None:
    """Where both commands' settings come from besides the environment: a TOML file, and the broker's address."""
    parser.add_argument("--config", help="TOML settings file (see docs/configuration.md)")
    parser.add_argument("--bootstrap-servers", help="Kafka bootstrap servers (NIRSTREAM_BOOTSTRAP_SERVERS)")


def _worker(args: argparse.Namespace) -> int:
    from nirstream.kafka.connection_check import check_kafka_security
    from nirstream.stream.app import run_worker
    from nirstream.stream.settings import Settings

    settings = Settings.load(
        args.config,
        bootstrap_servers=args.bootstrap_servers,
        registry=args.registry,
        group_id=args.group_id,
        max_batch_size=args.max_batch_size,
        batch_timeout_ms=args.batch_timeout_ms,
        web_port=args.web_port,
    )
    check_kafka_security(settings)
    run_worker(settings, loglevel=args.loglevel)
    return 0


def _opcua(args: argparse.Namespace) -> int:
    import logging

    from nirstream.kafka.connection_check import check_kafka_security
    from nirstream.stream.opcua_app import run_opcua
    from nirstream.stream.settings import OpcUaSettings

    logging.getLogger().setLevel(args.loglevel.upper())
    logging.getLogger("asyncua").setLevel(max(logging.WARNING, logging.getLogger().level))  # its info lines are chatter
    options = {"endpoint": args.endpoint, "security_mode": args.security_mode, "allow_insecure": args.allow_insecure,
               "certificate": args.certificate, "private_key": args.private_key, "trusted_clients": args.trusted_clients,
               "stale_seconds": args.stale_seconds, "namespace_uri": args.namespace_uri, "web_port": args.web_port}
    settings = OpcUaSettings.load(args.config, bootstrap_servers=args.bootstrap_servers,
                                  opcua={k: v for k, v in options.items() if v is not None})
    check_kafka_security(settings)
    run_opcua(settings)
    return 0
