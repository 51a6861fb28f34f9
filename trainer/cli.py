"""``nirstream train``, ``nirstream evaluate`` and ``nirstream models ...``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

PROTOCOL_HELP = "same-instrument (calibrate_1 -> test_1), cross-instrument (instrument 1 -> test_2), or tecator"


def _registry_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--registry", type=Path, help="model registry directory (default $NIRSTREAM_REGISTRY or ./models)")


def _registry(args: argparse.Namespace):
    from nirstream.core.registry import ModelRegistry
    from nirstream.core.settings import SharedSettings

    return ModelRegistry(args.registry or SharedSettings.load().registry)


def register(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser(
        "train",
        help="train the CNN (augment -> EMSC -> CNN) with a PLS baseline, publish a bundle, promote if better",
        description=(
            "Fit the paper's 1D CNN with early stopping on the validation split, fit PLS with latent variables "
            "chosen by cross-validation (and report the test-set 'oracle' choice, labelled as such), write a "
            "checksummed bundle to the registry and promote it only if it beats the champion on held-out data. "
            "Writes an HTML/JSON report with plots."
        ),
    )
    train.add_argument("--config", type=Path, help="TOML or YAML file with any of the options below")
    train.add_argument("--protocol", help=PROTOCOL_HELP + " (default cross-instrument)")
    train.add_argument("--target", help="reference column (default assay for tablets, fat for tecator)")
    train.add_argument("--variant", choices=["none", "emsc", "augment", "augment+emsc"], help="preprocessing (default augment+emsc)")
    train.add_argument("--seed", type=int)
    train.add_argument("--epochs", type=int, help="maximum epochs (early stopping usually ends sooner)")
    train.add_argument("--n-copies", type=int, help="augmented copies per training spectrum (paper: 100)")
    train.add_argument("--ensemble-size", type=int,
                       help="CNN seed-ensemble members averaged into one model (default 3; --quick: 1)")
    train.add_argument("--quick", action="store_true",
                       help="demo-sized CNN, one member, ~30,000 augmented spectra seen (10-30 epochs): ~25 s of fitting on 2 cores")
    train.add_argument("--no-pls", action="store_true", help="skip the PLS baseline")
    train.add_argument("--promote-margin", type=float, help="relative RMSEP improvement needed to promote (default 0)")
    train.add_argument("--report-dir", type=Path, help="where reports go (default ./artifacts)")
    train.add_argument("--extra-training", type=Path, help="CSV/Parquet of labelled plant spectra to add to the training set")
    train.add_argument("--from-topic", metavar="TOPIC",
                       help="add the labelled plant spectra of this topic (e.g. nirstream.labelled; needs --bootstrap-servers)")
    train.add_argument("--bootstrap-servers", help="Kafka for --from-topic, and to announce a promotion on the models topic "
                            "(SASL/TLS from NIRSTREAM_SECURITY__*, as for the worker)")
    _registry_argument(train)
    train.set_defaults(handler=_train)

    evaluate = subparsers.add_parser(
        "evaluate", help="evaluate a registry version on a protocol's test sets",
        description="Predict a protocol's test sets with a published model (the worker's code path) and print the figures.",
    )
    evaluate.add_argument("--version", help="registry version (default: the champion)")
    evaluate.add_argument("--protocol", default="cross-instrument", help=PROTOCOL_HELP)
    evaluate.add_argument("--output", type=Path, help="write the figures as JSON")
    _registry_argument(evaluate)
    evaluate.set_defaults(handler=_evaluate)

    models = subparsers.add_parser("models", help="list, show, promote or roll back registry versions",
                                   description="Manage the file-system model registry.")
    actions = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="versions with status and held-out RMSEP", description="List versions.")
    _registry_argument(listing)
    listing.set_defaults(handler=_models_list)
    show = actions.add_parser("show", help="a version's metadata and manifest", description="Show one version.")
    show.add_argument("version", nargs="?", help="default: the champion")
    _registry_argument(show)
    show.set_defaults(handler=_models_show)
    for name, text in (("promote", "make VERSION the champion (verifies it first)"), ("rollback", "return to the previous champion")):
        action = actions.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        if name == "promote":
            action.add_argument("version")
        action.add_argument("--reason", default=f"manual {name}")
        action.add_argument("--bootstrap-servers", help="announce the change on the models topic of this Kafka (SASL/TLS from NIRSTREAM_SECURITY__*)")
        _registry_argument(action)
        action.set_defaults(handler=_models_change)


def _load_config_file(path: Path | None) -> dict:
    """A train config (TOML or YAML); keys that are not ``TrainSettings`` fields are refused by name."""
    from nirstream.core.settings import ConfigFileError
    from trainer.training_run import TrainSettings

    if path is None:
        return {}
    if not path.exists():
        raise ConfigFileError(f"config file {path} does not exist")
    text = path.read_text()
    if path.suffix.lower() == ".toml":
        import tomllib

        options = tomllib.loads(text)
    else:
        import yaml

        options = yaml.safe_load(text) or {}
    unknown = sorted(set(options) - set(TrainSettings.model_fields))
    if unknown:
        raise ConfigFileError(f"{path}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(TrainSettings.model_fields)}")
    return options


def _train(args: argparse.Namespace) -> int:
    from trainer.training_run import TrainSettings, run_training

    options = _load_config_file(args.config)
    flags = {
        "protocol": args.protocol, "target": args.target, "variant": args.variant, "seed": args.seed,
        "epochs": args.epochs, "n_copies": args.n_copies, "ensemble_size": args.ensemble_size, "promote_margin": args.promote_margin,
        "report_dir": args.report_dir, "extra_training": args.extra_training,
        "bootstrap_servers": args.bootstrap_servers, "registry": args.registry,  # None: NIRSTREAM_REGISTRY or ./models
    }
    options.update({k: v for k, v in flags.items() if v is not None})
    if args.from_topic:
        options["extra_training"] = _export_from_topic(args, options)
    if args.quick:
        options["quick"] = True
    if args.no_pls:
        options["pls"] = False
    # one line per epoch when the output goes to a file (a demo's or a scheduler's log), a live bar on a terminal
    summary = run_training(TrainSettings(**options), verbose="auto" if sys.stdout.isatty() else 2)
    print(f"version {summary['version']}: {summary['promotion']['reason']}")
    for name, m in summary["cnn"]["tests"].items():
        print(f"  CNN  {name:12s} RMSEP {m['rmsep']:.3f} {summary['unit']}  bias {m['bias']:+.3f}  R² {m['r2']:.3f}")
    for rule in ("min", "1se"):
        if summary["pls"]:
            entry = summary["pls"][f"cv_{rule}"]
            for name, m in entry["tests"].items():
                print(f"  PLS  {name:12s} RMSEP {m['rmsep']:.3f} {summary['unit']}  ({entry['lv']} LV by CV, {rule} rule)")
    for name, m in (summary["pls"] or {}).get("oracle_chosen_on_test", {}).items():
        print(f"  PLS  {name:12s} RMSEP {m['rmsep']:.3f} {summary['unit']}  ({m['lv']} LV ORACLE: chosen on this test set)")
    print(f"report: {summary['report']}")
    return 0


def _export_from_topic(args: argparse.Namespace, options: dict) -> Path:
    """Labelled pairs from the stream -> CSV in the report directory (kept: it documents the training data)."""
    import time

    from nirstream.core.datasets import load_tablets, load_tecator
    from nirstream.core.messages.common import WavelengthGrid
    from trainer.labelled import export_labelled
    from trainer.protocols import DEFAULT_TARGETS

    if not args.bootstrap_servers:
        raise ValueError("--from-topic needs --bootstrap-servers")
    protocol = options.get("protocol", "cross-instrument")
    target = options.get("target") or DEFAULT_TARGETS[protocol]
    wavelengths = load_tecator().wavelengths if protocol == "tecator" else load_tablets(1).wavelengths
    destination = Path(options.get("report_dir", "artifacts")) / f"labelled-{time.strftime('%Y%m%d-%H%M%S')}.csv"
    count = export_labelled(args.bootstrap_servers, args.from_topic, target, WavelengthGrid.from_wavelengths(wavelengths), destination)
    print(f"{count} labelled plant spectra from {args.from_topic} -> {destination}")
    return destination


def _evaluate(args: argparse.Namespace) -> int:
    from nirstream.core.predictor import Predictor
    from nirstream.core.figures_of_merit import regression_metrics
    from trainer.protocols import load_protocol

    registry = _registry(args)
    predictor = Predictor(registry.load(args.version))
    protocol = load_protocol(args.protocol, predictor.target, full_grid=True)
    figures = {name: regression_metrics(protocol.y(data), predictor.predict(data.X).values) for name, data in protocol.tests.items()}
    for name, m in figures.items():
        print(f"v{predictor.version} {name:12s} RMSEP {m['rmsep']:.3f} {predictor.unit}  bias {m['bias']:+.3f}  "
              f"SEP {m['sep']:.3f}  R² {m['r2']:.3f}  slope {m['slope']:.3f}  n={m['n']}")
    if args.output:
        args.output.write_text(json.dumps({"version": predictor.version, "protocol": protocol.name, "tests": figures}, indent=2))
    return 0


def _models_list(args: argparse.Namespace) -> int:

    registry = _registry(args)
    versions = registry.versions()
    if not versions:
        print(f"registry {registry.base} is empty")
        return 0
    for version in versions:
        meta = json.loads((registry.path(version) / "bundle.json").read_text())
        tests = meta.get("metrics", {}).get("tests", {})
        figures = "  ".join(f"{name} {m['rmsep']:.3f}" for name, m in tests.items())
        print(f"{version:>4}  {registry.status(version):12s} {meta['target']:10s} {meta['created_at'][:19]}  RMSEP {figures}")
    return 0


def _models_show(args: argparse.Namespace) -> int:
    from nirstream.core.bundle import verify_bundle

    registry = _registry(args)
    version = args.version or registry.champion()
    if version is None:
        raise ValueError(f"registry {registry.base} has no champion; give a version")
    manifest = verify_bundle(registry.path(version))
    meta = json.loads((registry.path(version) / "bundle.json").read_text())
    print(json.dumps({"version": version, "status": registry.status(version), "manifest": manifest,
                      **{k: meta[k] for k in ("target", "unit", "variant", "input_grid", "metrics", "training",
                                              "dataset_name", "dataset_fingerprint", "code_version", "created_at")}}, indent=2))
    return 0


def _models_change(args: argparse.Namespace) -> int:
    from nirstream.core.settings import SharedSettings
    from trainer.announce import announce

    registry = _registry(args)
    if args.models_command == "promote":
        registry.promote(args.version, args.reason)
        version = args.version
    else:
        version = registry.rollback(args.reason)
    print(f"champion is now version {version}")
    if args.bootstrap_servers:
        announce(args.bootstrap_servers, SharedSettings.load().topics.models, version, registry.base, args.reason)
    return 0
