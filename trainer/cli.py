"""``nirstream train``, ``nirstream evaluate`` and ``nirstream models ...``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EVALUATE_DESCRIPTION = ("Predict a protocol's test sets, or every row of --data, with a published model (the worker's code path) "
                        "and print RMSEP (95 %% bootstrap interval), bias, SEP, R², slope and interval coverage per target. "
                        "A --data file on another wavelength grid is linearly interpolated onto the model's grid if it "
                        "covers the model's window.")
HISTORY_DESCRIPTION = ("Show every publish, promotion, rejection, rollback and calibration-transfer publish in the "
                       "registry's history.jsonl (when, event, version or analyzer, who, the artifact's checksum, why) and "
                       "verify its hash chain and head anchor (history.head). Exits 2 and names the first bad line when a "
                       "record was edited, removed, reordered or inserted, or the log was truncated. Records from before "
                       "the audit trail are shown as legacy (unchained). Keep the printed head hash elsewhere and pass it "
                       "to --expect-head later: that also catches a rewrite of the whole chain and its anchor.")
PROTOCOL_HELP = "same-instrument (calibrate_1 -> test_1), cross-instrument (instrument 1 -> test_2), or tecator"


def _registry_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--registry", type=Path, help="model registry directory (default $NIRSTREAM_REGISTRY or ./models)")


def _registry(args: argparse.Namespace, signing: bool = False, trusting: bool = False):
    """The registry the options name; ``signing``: it signs what it publishes (``signing_key_file``); ``trusting``:
    it loads only what the trust list accepts (``trusted_keys_dir``, ``allow_unsigned``), as the worker does."""
    from nirstream.core.artifacts.registry import ModelRegistry
    from nirstream.core.artifacts.signing import configured_signer, configured_trust
    from nirstream.core.settings import SharedSettings

    settings = SharedSettings.load()
    return ModelRegistry(args.registry or settings.registry,
                         signer=configured_signer(settings.signing_key_file) if signing else None,
                         trust=configured_trust(settings.trusted_keys_dir, settings.allow_unsigned) if trusting else None)


def _data_arguments(parser: argparse.ArgumentParser, verb: str, split_labels: bool = True) -> None:
    """The options that describe a data file: the same for train and evaluate."""
    parser.add_argument("--data", type=Path, help=f"{verb} your own spectra: CSV or Parquet (numeric column names are "
                        "wavelengths in nm), or a folder/zip of JCAMP-DX files with --references")
    parser.add_argument("--references", type=Path, help="with JCAMP-DX --data: CSV of reference values by sample id")
    parser.add_argument("--target", action="append", metavar="NAME",
                        help="reference column to predict; repeat for several (default: built-in protocol's, or every "
                             "numeric column of --data)" if split_labels else
                        "reference column to evaluate; repeat for several (default: every target of the model)")
    parser.add_argument("--id-column", help="sample id column (replicate spectra of one id stay in one split; JCAMP: "
                        "the references' id column, default 'sample')")
    if not split_labels:
        parser.add_argument("--split-column", help="column naming each row's split: figures per split")
        parser.add_argument("--unit", action="append", metavar="TARGET=UNIT", help=argparse.SUPPRESS)
        return
    parser.add_argument("--split-column", help="column naming each row's split; without it a Kennard-Stone split is made")
    parser.add_argument("--train", dest="train_label", metavar="LABEL", help="training rows' label (default train)")
    parser.add_argument("--validation", dest="validation_label", metavar="LABEL",
                        help="validation rows' label (default validation): early stopping, intervals, promotion gate; "
                             "with fewer than 10 such rows (or none) they train and cross-validation chooses instead")
    parser.add_argument("--test", dest="test_label", metavar="LABEL",
                        help="test rows' label (default test): reported only; optional")
    parser.add_argument("--gate", dest="gate_label", metavar="LABEL",
                        help="rows set aside for the promotion gate alone (default: the gate uses the validation rows)")
    parser.add_argument("--unit", action="append", metavar="TARGET=UNIT", help="unit of a target, e.g. fat=%%; repeatable")


def _data_source_options(args: argparse.Namespace, configured: dict | None = None) -> dict | None:
    """The ``DataSource`` fields from the command line over those of a config file's ``data`` table."""
    options = dict(configured or {})
    flags = {"path": args.data, "references": args.references, "id_column": args.id_column,
             "split_column": args.split_column, "train": getattr(args, "train_label", None),
             "validation": getattr(args, "validation_label", None), "test": getattr(args, "test_label", None),
             "gate": getattr(args, "gate_label", None),
             "window_nm": getattr(args, "window_nm", None)}
    options.update({k: v for k, v in flags.items() if v is not None})
    if not options:
        return None  # a built-in protocol: --target and --unit are its
    if args.target:
        options["targets"] = args.target
    if args.unit:
        units = [u.split("=", 1) for u in args.unit]
        bad = [u for u, pair in zip(args.unit, units, strict=True) if len(pair) != 2 or not pair[0]]
        if bad:
            raise ValueError(f"--unit takes TARGET=UNIT, got {bad}")
        options["units"] = {**options.get("units", {}), **dict(units)}
    if "path" not in options:
        raise ValueError(f"data options {sorted(options)} need a data file (--data or data.path)")
    return options


def register(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser(
        "train",
        help="train the CNN (augment -> EMSC -> CNN) and the operator-adaptive PLS, deploy the family validation prefers, publish a signed bundle, promote if better",
        description=(
            "Fit the paper's 1D CNN (one output per target) with early stopping on the validation split, fit PLS "
            "per target with latent variables chosen by cross-validation (and report the test-set 'oracle' choice, "
            "labelled as such), calibrate prediction intervals on the validation split, write a checksummed bundle "
            "to the registry and promote it only if it beats the champion on the validation split. Test sets choose "
            "nothing: their RMSEP (with bootstrap intervals), CNN - PLS differences and interval coverage are "
            "reported in an HTML/JSON report with plots. Data: a built-in --protocol or your own --data file."
        ),
    )
    train.add_argument("--config", type=Path, help="TOML or YAML file with any of the options below ([data] table for a "
                       "data file's options); unknown keys are refused")
    train.add_argument("--protocol", help=PROTOCOL_HELP + " (default cross-instrument; ignored with --data)")
    _data_arguments(train, "train on")
    train.add_argument("--variant", choices=["none", "emsc", "augment", "augment+emsc", "shape", "shape+emsc"],
                       help="preprocessing and augmentation (default augment+emsc). augment: offset/slope/scale, which EMSC "
                            "removes again; shape: wavelength warp, band width, higher-order baselines, channel gain")
    train.add_argument("--instrument-pairs", nargs=2, type=Path, metavar=("MASTER", "SLAVE"),
                       help="shape variants: also add scaled slave - master differences of these paired spectra "
                            "(CSV/Parquet with a 'sample' column)")
    train.add_argument("--centring", choices=["spectrum", "global"],
                       help="CNN input: subtract the mean training spectrum, so differences between samples reach the "
                            "network at unit size (default), or one global mean (the paper's scaling)")
    train.add_argument("--window-nm", type=float, nargs=2, metavar=("FIRST", "LAST"),
                       help="with --data: the wavelengths the model looks at (default: chosen by --region)")
    train.add_argument("--region", choices=["cv", "full"],
                       help="without a window: cv chooses the spectral region by moving-window PLS cross-validation on "
                            "the training split (default), full keeps every channel")
    train.add_argument("--seed", type=int)
    train.add_argument("--epochs", type=int, help="maximum epochs (early stopping usually ends sooner)")
    train.add_argument("--n-copies", type=int, help="augmented copies per training spectrum (paper: 100)")
    train.add_argument("--ensemble-size", type=int,
                       help="CNN seed-ensemble members averaged into one model (default 3; --quick: 1)")
    train.add_argument("--quick", action="store_true",
                       help="demo-sized CNN, one member, ~30,000 augmented spectra seen (10-30 epochs): ~25 s of fitting on 2 cores")
    train.add_argument("--budget", metavar="TIME",
                       help="search the CNN's size, regularisation, learning rate and augmentation for this long (e.g. "
                            "10m, 90s; Optuna), each trial scored on the validation split, or by 3-fold CV on the "
                            "training split where the validation targets spread less than half as much as the "
                            "training targets; default: the paper's configuration")
    train.add_argument("--coverage", type=float, help="prediction intervals' coverage, calibrated on the validation split (default 0.9)")
    train.add_argument("--calibration", choices=["auto", "validation", "cross-validation"],
                       help="calibrate the intervals on the validation residuals, or on 5-fold out-of-fold residuals of "
                            "the training split (5 more fits); default auto: validation, unless the validation targets "
                            "spread less than half as much as the training targets (then cross-validation) or there "
                            "are fewer than 30 validation spectra (then both pooled)")
    train.add_argument("--no-pls", action="store_true", help="skip PLS (baseline and deployable family): CNN only")
    train.add_argument("--family", choices=["auto", "cnn", "pls"],
                       help="model family to deploy (default auto: CNN or PLS, whichever has the lower validation RMSEP)")
    train.add_argument("--promote-margin", type=float,
                       help="relative validation-RMSEP improvement over the champion needed to promote (default 0)")
    train.add_argument("--report-dir", type=Path, help="where reports go (default ./artifacts)")
    train.add_argument("--extra-training", type=Path, help="CSV/Parquet of labelled plant spectra added to the training set (every row)")
    train.add_argument("--from-topic", metavar="TOPIC",
                       help="add the labelled plant spectra of this topic (e.g. nirstream.labelled; needs --bootstrap-servers)")
    train.add_argument("--by", help="who trains, recorded with the publish/promote/reject in the registry's audit trail "
                       "(default $NIRSTREAM_USER, else user@host)")
    train.add_argument("--bootstrap-servers", help="Kafka for --from-topic, and to announce a promotion on the models topic "
                            "(SASL/TLS from NIRSTREAM_SECURITY__* or --kafka-config, as for the worker)")
    train.add_argument("--kafka-config", dest="shared_config", type=Path, metavar="FILE",
                       help="TOML settings file for Kafka connection, security and topics (the worker's [security] and "
                            "[topics]; docs/configuration.md); --config is the training's own file")
    _registry_argument(train)
    train.set_defaults(handler=_train)

    evaluate = subparsers.add_parser(
        "evaluate", help="evaluate a registry version on a protocol's test sets or on your own data file",
        description=EVALUATE_DESCRIPTION)
    evaluate.add_argument("--version", help="registry version (default: the champion)")
    evaluate.add_argument("--protocol", default="cross-instrument", help=PROTOCOL_HELP + " (ignored with --data)")
    _data_arguments(evaluate, "evaluate on", split_labels=False)
    evaluate.add_argument("--analyzer", help="the spectra come from this analyzer: apply its active calibration transfer "
                          "(nirstream transfer fit), as the worker does")
    evaluate.add_argument("--output", type=Path, help="write the figures as JSON (--prequential: and a PNG beside it; "
                          "default ./prequential-FILE.json)")
    prequential = evaluate.add_argument_group(
        "prequential", "--prequential FILE: the learning loop's retraining policy and time-forward gate replayed on a "
        "time-ordered file of spectra with sparse lab values (empty where the lab measured nothing). Each "
        "lab-referenced spectrum is predicted by the model the loop had at its time, trained only on lab values that "
        "had arrived by then; prints and writes (JSON and PNG) the prequential RMSEP of the loop beside the static "
        "model's and the mean of the lab values known at the time, with bootstrap intervals. Retrains are PLS (LVs "
        "by cross-validation); the static model is --version (default: the champion) or, with --calibration-pairs, "
        "PLS on the file's first lab values.")
    prequential.add_argument("--prequential", type=Path, metavar="FILE", help="CSV/Parquet, one row per spectrum")
    prequential.add_argument("--time-column", help="when each spectrum was measured (ISO timestamps or seconds)")
    prequential.add_argument("--lab-delay", metavar="TIME", help="lab values arrive this long after their spectrum "
                             "(e.g. 2h, 90m)")
    prequential.add_argument("--lab-time-column", help="or: when each lab value arrived (ISO timestamps or seconds)")
    prequential.add_argument("--calibration-pairs", type=int, metavar="N",
                             help="the static model is PLS on the file's first N lab values (the calibration part, "
                                  "also the retrains' base data); the evaluation starts after them")
    prequential.add_argument("--window", action="append", metavar="NAME",
                             help="training window options the loop chooses among at each retrain, time-forward: all, "
                                  "recent-N, recent-N-xW (repeatable; default all, recent-40, recent-40-x3)")
    prequential.add_argument("--config", type=Path, help="the trainer service's TOML settings: its [retrain] and "
                             "[gate] tables (default: the service's defaults and NIRSTREAM_RETRAIN__*/GATE__*)")
    prequential.add_argument("--seed", type=int, default=0, help="of the cross-validation folds and bootstraps")
    _registry_argument(evaluate)
    evaluate.set_defaults(handler=_evaluate)

    transfer = subparsers.add_parser("transfer", help="calibration transfer per analyzer (PDS, DS, slope/bias)",
                                     description="Make another analyzer's spectra fit a model trained on the master "
                                                 "instrument, from transfer standards measured on both.")
    transfer_actions = transfer.add_subparsers(dest="transfer_command", required=True, metavar="ACTION")
    fit = transfer_actions.add_parser(
        "fit", help="fit a transfer for one analyzer and make it active (the worker picks it up)",
        description=("Fit a calibration transfer for --analyzer from transfer standards: the same samples measured on "
                     "the master (the instrument the model's training spectra came from) and on the analyzer, matched "
                     "by sample id. pds: piecewise direct standardisation (chemotools; each master channel from a "
                     "window of the analyzer's channels); ds: direct standardisation (all channels); sbc: slope/bias "
                     "correction of the model's predictions (applies to --version only). The artifact is stored "
                     "checksummed in the registry next to the model and becomes the analyzer's active transfer."))
    fit.add_argument("--analyzer", required=True, help="analyzer id, as in the spectrum messages")
    fit.add_argument("--master", required=True, type=Path, help="CSV/Parquet of the standards measured on the master")
    fit.add_argument("--slave", required=True, type=Path, help="CSV/Parquet of the same standards measured on the analyzer")
    fit.add_argument("--method", required=True, choices=["pds", "ds", "sbc"])
    fit.add_argument("--id-column", default="sample", help="sample id column matching the standards (default sample)")
    fit.add_argument("--version", help="the model it is fitted with (default: the champion)")
    fit.add_argument("--half-window", type=int, help="pds: channels each side of each master channel (default 5)")
    fit.add_argument("--components", type=int, help="pds: PLS components per window (default 2)")
    fit.add_argument("--by", help="who fits it, for the artifact and the registry's audit trail (default "
                     "$NIRSTREAM_USER, else user@host)")
    fit.add_argument("--reason", default="", help="why, for the registry's audit trail")
    fit.add_argument("--bootstrap-servers", help="announce it on the models topic of this Kafka so workers apply it at "
                     "once (they also poll the registry); SASL/TLS from NIRSTREAM_SECURITY__* or --config")
    fit.add_argument("--config", dest="shared_config", type=Path, metavar="FILE", help="TOML settings file: Kafka connection, security, topics, registry (the [security]/[topics] of the worker's file; docs/configuration.md)")
    _registry_argument(fit)
    fit.set_defaults(handler=_transfer_fit)

    models = subparsers.add_parser("models", help="list, show, promote or roll back registry versions; its audit trail; "
                                   "signing keys and signatures",
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
        action = actions.add_parser(name, help=text, description=text[0].upper() + text[1:] + ". Who, when, why and the "
                                    "bundle's checksum are recorded in the registry's audit trail (nirstream models history).")
        if name == "promote":
            action.add_argument("version")
        action.add_argument("--reason", default=f"manual {name}", help=f"why, for the audit trail (default 'manual {name}')")
        action.add_argument("--by", help="who, for the audit trail (default $NIRSTREAM_USER, else user@host)")
        action.add_argument("--bootstrap-servers", help="announce the change on the models topic of this Kafka (SASL/TLS from NIRSTREAM_SECURITY__* or --config)")
        action.add_argument("--config", dest="shared_config", type=Path, metavar="FILE", help="TOML settings file: Kafka connection, security, topics, registry (the [security]/[topics] of the worker's file; docs/configuration.md)")
        _registry_argument(action)
        action.set_defaults(handler=_models_change)
    approve = actions.add_parser(
        "approve", help="promote a version the trainer service proposed, as a named person's decision",
        description="Promote VERSION, which the learning loop's time-forward gate proposed, recording who approved it, "
                    "why, and the gate's figures in the audit trail (21 CFR Part 11 change control).")
    approve.add_argument("version")
    approve.add_argument("--by", required=True, help="who approves (a named person)")
    approve.add_argument("--reason", required=True, help="why, for the audit trail")
    approve.add_argument("--bootstrap-servers", help="announce the change on the models topic of this Kafka")
    approve.add_argument("--config", dest="shared_config", type=Path, metavar="FILE", help="TOML settings file: Kafka connection, security, topics, registry (the [security]/[topics] of the worker's file; docs/configuration.md)")
    _registry_argument(approve)
    approve.set_defaults(handler=_models_change)
    history = actions.add_parser(
        "history", help="the registry's audit trail: who promoted, rejected, rolled back or published what, verified",
        description=HISTORY_DESCRIPTION)
    history.add_argument("--json", action="store_true", help="records and verification as JSON")
    history.add_argument("--verify", action="store_true", help="verification only, no table (for scripts and alerts)")
    history.add_argument("--expect-head", metavar="HASH", help="a head hash printed earlier (at least 12 hex characters): "
                         "fail unless it is still a record of the chain")
    _registry_argument(history)
    history.set_defaults(handler=_models_history)
    from nirstream.trainer import signing_cli

    signing_cli.register(actions, _registry_argument)


def _load_config_file(path: Path | None) -> dict:
    """A train config (TOML or YAML); keys that are not ``TrainSettings`` fields are refused by name."""
    from nirstream.core.settings import ConfigFileError
    from nirstream.trainer.train_settings import TrainSettings

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
    if isinstance(options.get("data"), dict):
        from nirstream.trainer.data_splits import DataSource

        unknown = sorted(set(options["data"]) - set(DataSource.model_fields))
        if unknown:
            raise ConfigFileError(f"{path}: unknown data setting(s) {', '.join(unknown)}; known: {', '.join(DataSource.model_fields)}")
    return options


def _train(args: argparse.Namespace) -> int:
    from nirstream.trainer.train_settings import TrainSettings

    options = _load_config_file(args.config)
    data = _data_source_options(args, options.pop("data", None))
    flags = {
        "protocol": args.protocol, "variant": args.variant, "centring": args.centring, "seed": args.seed,
        "epochs": args.epochs, "n_copies": args.n_copies, "ensemble_size": args.ensemble_size, "promote_margin": args.promote_margin,
        "report_dir": args.report_dir, "extra_training": args.extra_training, "coverage": args.coverage,
        "family": args.family, "search_budget": args.budget, "calibration": args.calibration, "region": args.region,
        "bootstrap_servers": args.bootstrap_servers, "registry": args.registry,  # None: NIRSTREAM_REGISTRY or ./models
        "by": args.by,
        "instrument_pairs": tuple(args.instrument_pairs) if args.instrument_pairs else None,
    }
    options.update({k: v for k, v in flags.items() if v is not None})
    if data is not None:
        options["data"] = data
    elif args.target:
        options["targets"] = args.target
    if args.quick:
        options["quick"] = True
    if args.no_pls:
        options["pls"] = False
    settings = TrainSettings(**options)
    if args.from_topic:
        settings = settings.model_copy(update={"extra_training": _export_from_topic(args, settings)})
    from nirstream.trainer.training_run import run_training  # TensorFlow: only once the options are known to be good

    # one line per epoch when the output goes to a file (a demo's or a scheduler's log), a live bar on a terminal
    from nirstream.trainer.stages.recovery import FittedModelKept

    try:
        summary = run_training(settings, verbose="auto" if sys.stdout.isatty() else 2)
    except FittedModelKept as exc:
        print(f"nirstream: error: {exc}", file=sys.stderr)
        return 2
    _print_summary(summary)
    return 0


def _print_summary(summary: dict) -> None:
    from nirstream.trainer.stages.screening import describe_left_out

    print(f"version {summary['version']}: {summary['promotion']['reason']}")
    print(f"  deployed {summary['deployed']['reason']}")
    if summary.get("region"):
        print(f"  spectral region: {summary['region']['how']}")
    for warning in (summary.get("domain") or {}).get("warnings", []):
        print(f"  WARNING: {warning}")
    units = summary["units"]
    coverage = summary["intervals"].get("test_coverage", {})
    family = summary["deployed"]["family"].upper()
    for name, per_target in summary["deployed"]["tests"].items():
        for target, m in per_target.items():
            ci, unit = m["rmsep_ci95"], units[target]
            line = (f"  {family:4s} {target:10s} {name:12s} RMSEP {m['rmsep']:.3f} {unit} (95% CI {ci['low']:.3f}-{ci['high']:.3f})"
                    f"  mean predictor {m['mean_predictor_rmsep']:.3f}  bias {m['bias']:+.3f}  R² {m['r2']:.3f}  (deployed)")
            if name in coverage:
                line += f"  interval ±{coverage[name][target]['width'] / 2:.3f}: covers {coverage[name][target]['coverage']:.0%}"
            print(line)
    if family != "CNN":
        for name, per_target in summary["cnn"].get("tests", {}).items():
            for target, m in per_target.items():
                print(f"  CNN  {target:10s} {name:12s} RMSEP {m['rmsep']:.3f} {units[target]}  "
                      f"mean predictor {m['mean_predictor_rmsep']:.3f}  (not deployed)")
    mean = summary["mean_predictor"]
    for target, pls in (summary["pls"] or {}).items():
        for rule in ("min", "1se"):
            entry = pls[f"cv_{rule}"]
            for name, m in entry["tests"].items():
                print(f"  PLS  {target:10s} {name:12s} RMSEP {m['rmsep']:.3f} {units[target]}  mean predictor "
                      f"{mean[name][target]:.3f}  (baseline {summary['variant']}, {entry['lv']} LV by CV, {rule} rule)")
        for name, m in pls.get("oracle_chosen_on_test", {}).items():
            print(f"  PLS  {target:10s} {name:12s} RMSEP {m['rmsep']:.3f} {units[target]}  mean predictor "
                  f"{mean[name][target]:.3f}  (baseline, {m['lv']} LV ORACLE: chosen on this test set)")
    for target, per_test in summary["cnn_minus_pls"].items():  # only the two candidates that competed
        for name, d in per_test.items():
            verdict = {"a better": "CNN better", "b better": "PLS better"}.get(d["verdict"], d["verdict"])
            print(f"  CNN − PLS candidate {target:10s} {name:12s} {d['difference']:+.3f} (95% CI {d['low']:+.3f} to "
                  f"{d['high']:+.3f}): {verdict} (the two families that competed for deployment)")
    if summary.get("small_set"):
        print(f"  small set: {summary['small_set']}")
    for entry in summary["left_out"]:
        print(f"  left out: {describe_left_out(entry)}")
    print(f"report: {summary['report']}")


def _export_from_topic(args: argparse.Namespace, settings) -> Path:
    """Labelled pairs from the stream -> CSV in the report directory (kept: it documents the training data)."""
    import time

    from nirstream.core.messages.common import WavelengthGrid
    from nirstream.trainer.plant_pairs import export_labelled

    if not args.bootstrap_servers:
        raise ValueError("--from-topic needs --bootstrap-servers")
    from nirstream.core.settings import SharedSettings
    from nirstream.kafka.connection_check import check_kafka_security

    kafka = SharedSettings.load(bootstrap_servers=args.bootstrap_servers)
    check_kafka_security(kafka)
    from nirstream.trainer.training_data import load_training_protocol

    protocol = load_training_protocol(settings.model_copy(update={"extra_training": None}))
    destination = settings.report_dir / f"labelled-{time.strftime('%Y%m%d-%H%M%S')}.csv"
    count = export_labelled(args.bootstrap_servers, args.from_topic, list(protocol.targets),
                            WavelengthGrid.from_wavelengths(protocol.train.wavelengths), destination,
                            client_options=kafka.kafka_client_options())
    print(f"{count} labelled plant spectra from {args.from_topic} -> {destination}")
    return destination


def _evaluate_prequential(args: argparse.Namespace) -> int:
    from nirstream.core.provenance import write_result
    from nirstream.trainer.prequential import (PrequentialSettings, base_model_from_calibration, deployed_model,
                                               run_prequential)
    from nirstream.trainer.prequential_data import load_time_ordered
    from nirstream.trainer.prequential_plot import plot_prequential
    from nirstream.trainer.search import parse_budget
    from nirstream.trainer.service_settings import TrainerServiceSettings
    from nirstream.trainer.training_window import DEFAULT_WINDOWS

    if not args.time_column:
        raise ValueError("--prequential needs --time-column")
    if args.target and len(args.target) > 1:
        raise ValueError("--prequential evaluates one target at a time")
    try:
        delay = None if args.lab_delay is None else parse_budget(args.lab_delay)
    except ValueError:
        raise ValueError(f"--lab-delay {args.lab_delay!r}: use seconds or a number with s, m or h (e.g. 2h)") from None
    data = load_time_ordered(args.prequential, args.time_column, target=args.target[0] if args.target else None,
                             lab_delay=delay, lab_time_column=args.lab_time_column, id_column=args.id_column)
    service = TrainerServiceSettings.load(args.config)
    settings = PrequentialSettings(retrain=service.retrain, gate=service.gate,
                                   windows=tuple(args.window or DEFAULT_WINDOWS), seed=args.seed)
    unit = ""
    if args.calibration_pairs:
        data = data.with_calibration(args.calibration_pairs)
        base, lvs = base_model_from_calibration(data, settings)
        static = f"PLS ({lvs} LV by cross-validation) on the file's first {args.calibration_pairs} lab values"
    else:
        from nirstream.core.serving.predictor import Predictor

        predictor = Predictor(_registry(args).load(args.version))
        base = deployed_model(predictor, data.target, data.wavelengths)
        unit = predictor.units[data.target]
        static = f"registry version {predictor.version}"
    result = run_prequential(data, base, settings)
    f = result.figures
    print(f"prequential {args.prequential.name} ({data.target}): {f['pairs']} lab values after the calibration part; "
          f"static model: {static}")
    for name, label in (("loop", "learning loop"), ("static", "static model"), ("mean", "mean of known lab values")):
        m = f["rmsep"][name]
        print(f"  {label:26s} RMSEP {m['rmsep']:.4g} ({m['confidence']:.0%} CI {m['low']:.4g}-{m['high']:.4g})")
    for name, label, other in (("loop_minus_static", "loop - static", "static"), ("loop_minus_mean", "loop - mean", "mean")):
        d = f[name]
        verdict = {"a better": "loop better", "b better": f"{other} better"}.get(d["verdict"], d["verdict"])
        print(f"  {label:26s} {d['difference']:+.4g} ({d['low']:+.4g} to {d['high']:+.4g}): {verdict}")
    statuses = [r.status for r in result.retrains]
    print(f"  retrains: {len(statuses)} ({statuses.count('promoted')} promoted, {statuses.count('rejected')} rejected, "
          f"{statuses.count('skipped')} skipped); versions served: {len(result.versions)}")
    output = args.output or Path(f"prequential-{args.prequential.stem}.json")
    write_result(output, {"data": str(args.prequential), "static_model": static,
                          "settings": {"retrain": settings.retrain.model_dump(), "gate": settings.gate.model_dump(),
                                       "windows": list(settings.windows), "variant": settings.variant,
                                       "lv_rule": settings.lv_rule, "cv_repeats": settings.cv_repeats},
                          **result.as_record()}, seeds=[args.seed])
    print(f"wrote {plot_prequential(result, output.with_suffix('.png'), unit)}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from nirstream.core.serving.predictor import Predictor
    from nirstream.trainer.evaluation import evaluate_data, evaluate_protocol

    if args.prequential:
        return _evaluate_prequential(args)
    registry = _registry(args, trusting=True)  # evaluate what the worker would serve, nothing it would refuse
    predictor = Predictor(registry.load(args.version))
    if args.analyzer:
        transfer = registry.load_transfer(args.analyzer)
        if transfer is None:
            raise ValueError(f"analyzer {args.analyzer!r} has no calibration transfer in {registry.base}")
        predictor = predictor.with_transfers({args.analyzer: transfer})
        print(f"analyzer {args.analyzer}: {transfer.label}" + ("" if predictor.transfers else
              f" was fitted for version {transfer.metadata.model_version}, not {predictor.version}: not applied"))
    data = _data_source_options(args)
    figures = (evaluate_data(predictor, data, args.analyzer) if data
               else evaluate_protocol(predictor, args.protocol, args.analyzer))
    for warning in figures["domain_warnings"]:
        print(f"v{predictor.version} WARNING: {warning}")
    for name, per_target in figures["tests"].items():
        for target, m in per_target.items():
            ci = m["rmsep_ci95"]
            line = (f"v{predictor.version} {target:10s} {name:12s} RMSEP {m['rmsep']:.3f} {predictor.units[target]} "
                    f"(95% CI {ci['low']:.3f}-{ci['high']:.3f})  bias {m['bias']:+.3f}  SEP {m['sep']:.3f}  "
                    f"R² {m['r2']:.3f}  slope {m['slope']:.3f}  n={m['n']}")
            if "interval_coverage" in m:
                line += f"  {predictor.intervals.coverage:.0%} interval covers {m['interval_coverage']:.0%}"
            print(line)
    for name, counts in figures.get("not_predicted", {}).items():
        for reason, count in counts.items():
            rows = ", ".join(f"row {e['row']} (sample {e['sample']})" for e in figures["left_out"]
                             if e["split"] == name and e["reason"] == reason)
            print(f"v{predictor.version} {name:12s} not predicted: {reason} {count}: {rows}")
    for name, e in figures["domain"].items():
        print(f"v{predictor.version} {name:12s} applicability domain: {e['warning']['count']} of {e['n']} beyond the "
              f"warning limits, {e['outlier']['count']} beyond the outlier limits (nominal 5 % and 1 %)")
    if figures.get("resampled"):
        print(f"  ({figures['resampled']})")
    if args.output:
        args.output.write_text(json.dumps({"version": predictor.version, **figures}, indent=2))
    return 0


def _transfer_fit(args: argparse.Namespace) -> int:
    from nirstream.core.artifacts.audit import current_actor
    from nirstream.core.datasets import load_table
    from nirstream.core.serving.predictor import Predictor
    from nirstream.trainer.champion import announce_change
    from nirstream.trainer.transfer_fit import PDS_COMPONENTS, PDS_HALF_WINDOW, fit_transfer

    registry = _registry(args, signing=True)
    predictor = Predictor(registry.load(args.version))
    master, slave = (load_table(path, id_column=args.id_column, spectra_only=True) for path in (args.master, args.slave))
    transfer = fit_transfer(args.method, predictor, master, slave, args.analyzer,
                            half_window=args.half_window or PDS_HALF_WINDOW, components=args.components or PDS_COMPONENTS,
                            by=current_actor(args.by))
    number = registry.publish_transfer(transfer, args.reason)
    announce_change(registry, predictor.version, f"analyzer {args.analyzer}: transfer {number} ({args.method})",
                    args.bootstrap_servers, event_type="transfer_published")
    print(f"analyzer {args.analyzer}: transfer {number} ({args.method}, {len(transfer.metadata.standards)} standards, "
          f"model v{predictor.version}) is active")
    for target, f in transfer.metadata.figures.items():
        print(f"  {target}: RMS difference to the master's predictions of the standards {f['rms_difference_before']:.3f} "
              f"-> {f['rms_difference_after']:.3f} (fit data: optimistic)")
    return 0


def _rmsep_text(figures: dict) -> str:
    """A test set's RMSEP from bundle metrics: per target (format 2) or one number (format-1 bundles)."""
    if "rmsep" in figures:
        return f"{figures['rmsep']:.3f}"
    return "/".join(f"{m['rmsep']:.3f}" for m in figures.values())


def _models_list(args: argparse.Namespace) -> int:
    from nirstream.core.artifacts.bundle import BundleMetadata

    registry = _registry(args)
    versions = registry.versions()
    if not versions:
        print(f"registry {registry.base} is empty")
        return 0
    for version in versions:
        meta = json.loads((registry.path(version) / "bundle.json").read_text())
        metadata = BundleMetadata.model_validate(meta)
        tests = metadata.metrics.get("tests", {})
        figures = "  ".join(f"{name} {_rmsep_text(m)}" for name, m in tests.items())
        print(f"{version:>4}  {registry.status(version):12s} {','.join(metadata.targets):16s} {meta['created_at'][:19]}  "
              f"RMSEP {figures}")
    return 0


def _models_show(args: argparse.Namespace) -> int:
    from nirstream.core.artifacts.bundle import BundleMetadata, verify_bundle

    registry = _registry(args)
    version = args.version or registry.champion()
    if version is None:
        raise ValueError(f"registry {registry.base} has no champion; give a version")
    manifest = verify_bundle(registry.path(version))
    meta = json.loads((registry.path(version) / "bundle.json").read_text())
    metadata = BundleMetadata.model_validate(meta).model_dump(mode="json")
    transfers = {}
    for analyzer, number in registry.active_transfers().items():
        loaded = registry.load_transfer(analyzer, number)  # verified: a tampered artifact is an error here too
        transfers[analyzer] = {"number": number, "method": loaded.metadata.method, "fitted_for": loaded.metadata.model_version,
                               "applies": loaded.applies_to(version), "standards": len(loaded.metadata.standards),
                               "by": loaded.metadata.by, "created_at": loaded.metadata.created_at.isoformat()}
    print(json.dumps({"version": version, "status": registry.status(version), "manifest": manifest, "transfers": transfers,
                      **{k: metadata[k] for k in ("targets", "units", "intervals", "variant", "input_grid", "metrics", "training",
                                                  "dataset_name", "dataset_fingerprint", "code_version", "created_at")}},
                     indent=2))
    return 0


def _models_change(args: argparse.Namespace) -> int:
    from nirstream.core.artifacts.audit import AuditLogError
    from nirstream.trainer.champion import approve_and_announce, promote_and_announce, roll_back_and_announce

    registry = _registry(args)
    if args.models_command == "promote":
        promote_and_announce(registry, args.version, args.reason, by=args.by, bootstrap_servers=args.bootstrap_servers)
        version = args.version
    elif args.models_command == "approve":
        approve_and_announce(registry, args.version, args.reason, by=args.by, bootstrap_servers=args.bootstrap_servers)
        version = args.version
    else:
        version = roll_back_and_announce(registry, args.reason, by=args.by, bootstrap_servers=args.bootstrap_servers)
    print(f"champion is now version {version}")
    try:
        anchor = registry.audit.anchor()
    except AuditLogError as exc:  # the change is made and recorded; only the anchor to print is unreadable
        print(f"nirstream: warning: audit trail: {exc} (nirstream models history)", file=sys.stderr)
        anchor = None
    if anchor is not None:
        print(f"audit trail: {anchor.count} records, head {anchor.hash}")
    return 0


def _history_subject(record: dict) -> str:
    details = d if isinstance(d := record.get("details"), dict) else {}  # an edited record may hold anything
    if record.get("event") == "transfer_published":
        return f"{details.get('analyzer', '?')} transfer {details.get('number', '?')} (v{record.get('version', '?')})"
    return f"v{record.get('version', '?')}"


def _models_history(args: argparse.Namespace) -> int:
    registry = _registry(args)
    report = registry.audit.verify(args.expect_head)
    if args.json:
        records = [{"line": line.number, "status": "unreadable" if line.fields is None or not line.complete
                    else "legacy" if line.legacy else "chained", **(line.fields or {})} for line in report.lines]
        print(json.dumps({"registry": str(registry.base), "records": records, "verification": report.as_dict()}, indent=2))
        return 0 if report.intact else 2
    if not args.verify:
        if not report.lines:
            print(f"registry {registry.base} has no history yet")
        else:
            print(f"{'line':>5}  {'when (UTC)':19s}  {'event':18s}  {'subject':26s}  {'by':20s}  {'checksum':12s}  reason")
        for line in report.lines:
            if line.fields is None or not line.complete:
                print(f"{line.number:>5}  (unreadable line)")
                continue
            record = line.fields  # any JSON values: an edited line must be shown, not crash the table
            by = "(legacy)" if line.legacy else str(record.get("by") or "-")
            when = str(record.get("at", ""))[:19].replace("T", " ")
            print(f"{line.number:>5}  {when:19s}  {str(record.get('event', '?')):18s}  {_history_subject(record):26s}  "
                  f"{by:20s}  {str(record.get('checksum') or '-')[:12]:12s}  {record.get('reason', '')}")
    for note in report.notes:
        print(f"note: {note}")
    if report.intact:
        legacy = f" ({report.legacy} legacy)" if report.legacy else ""
        print(f"chain intact: {report.records} records{legacy}" + (f", head {report.head}" if report.head else ""))
        return 0
    first, *others = report.problems
    print(f"nirstream: error: audit trail broken at line {first.line} ({first.kind}): {first.message}", file=sys.stderr)
    for problem in others:
        print(f"  also line {problem.line} ({problem.kind}): {problem.message}", file=sys.stderr)
    return 2
