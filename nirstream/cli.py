"""The ``nirstream`` command line: one entry point, one subcommand per job.

Subcommand modules only declare arguments here; heavy imports (TensorFlow, faust) happen
inside the handlers so that ``--help`` stays instant.
"""

from __future__ import annotations

import argparse
import atexit
import gc
import logging
import sys
from collections.abc import Callable

from nirstream import __version__

DESCRIPTION = """\
nirstream predicts chemical content from inline NIR spectra on Kafka, flags spectra the model
should not be trusted on, and hot-swaps retrained models into the running stream. Each
calibration trains a 1D CNN (augmentation and EMSC, Bjerrum et al. 2017) and PLS, and deploys
the family with the lower validation error: with the default settings PLS has won on every
data set measured so far (a --budget search of the CNN's settings can change that)."""

EPILOG = ("Run `nirstream COMMAND --help` for the options of each command. In train, evaluate, transfer and demo, "
          "TensorFlow's and absl's lines and library warnings go to $NIRSTREAM_LOG_DIR/frameworks.log (default "
          "./artifacts), not the console.")
CONSOLE_COMMANDS_THAT_FIT = {"train", "evaluate", "transfer", "demo"}  # the commands that may import TensorFlow


def _add_data_commands(subparsers: argparse._SubParsersAction) -> None:
    from nirstream.core.datasets.catalog import DATASET_HELP

    data = subparsers.add_parser("data", help="fetch and inspect data sets", description="Fetch and inspect data sets.")
    data_commands = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")

    fetch = data_commands.add_parser(
        "fetch",
        help="download the IDRC 2002 tablet set and the corn set once (sha256 checked) into the data directory",
        description=(
            "Download the IDRC 2002 tablet shoot-out file and Eigenvector's corn set from the spectra-sherpa==0.4.2 "
            "wheel on PyPI (one download), verify each sha256 and cache them ($NIRSTREAM_DATA_DIR, default "
            "~/.cache/nirstream). Does nothing when verified copies are already there."
        ),
    )
    fetch.add_argument("--dest", help="folder to write the files to instead of the data directory")
    fetch.add_argument("--force", action="store_true", help="download again even if a verified copy exists")
    fetch.set_defaults(handler=_data_fetch)

    info = data_commands.add_parser(
        "info", help="print shapes, splits, targets and fingerprint of a data set", description="Describe a data set."
    )
    info.add_argument("dataset", help=DATASET_HELP)
    info.add_argument("--split-column", help="for CSV/Parquet: column naming each row's split")
    info.add_argument("--id-column", help="for CSV/Parquet: column with sample names")
    info.set_defaults(handler=_data_info)


def _data_fetch(args: argparse.Namespace) -> int:
    from pathlib import Path

    from nirstream.core.datasets.catalog import FETCHED_FILES
    from nirstream.core.datasets.fetched import fetch

    wanted = {file: Path(args.dest) / file.filename if args.dest else file.path() for file in FETCHED_FILES}
    for file, path in fetch(wanted, force=args.force).items():
        print(f"{file.description} data verified at {path}")
    return 0


def _data_info(args: argparse.Namespace) -> int:
    from nirstream.core.datasets.catalog import open_dataset

    dataset = open_dataset(args.dataset, split_column=args.split_column, id_column=args.id_column)
    print(f"name:        {dataset.name}")
    print(f"spectra:     {dataset.n_samples} x {dataset.n_channels} channels")
    print(f"wavelengths: {dataset.wavelengths[0]:g}-{dataset.wavelengths[-1]:g} nm")
    for target, unit in zip(dataset.target_names, dataset.units, strict=True):
        values = dataset.target(target)
        print(f"target:      {target} [{unit or '-'}] {values.min():.4g}..{values.max():.4g}")
    for split, rows in dataset.splits.items():
        print(f"split:       {split} ({rows.size})")
    print(f"fingerprint: {dataset.fingerprint()}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nirstream", description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"nirstream {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_data_commands(subparsers)
    for register in _command_modules():
        register(subparsers)
    return parser


def _command_modules() -> list[Callable[[argparse._SubParsersAction], None]]:
    """Subcommands contributed by the trainer, the stream worker, the file bridge and the development tools."""
    from nirstream.devtools import cli as devtools_cli
    from nirstream.ingest import cli as ingest_cli
    from nirstream.stream import cli as stream_cli
    from nirstream.trainer import cli as trainer_cli
    from nirstream.trainer import service_cli as trainer_service_cli

    return [trainer_cli.register, trainer_service_cli.register, stream_cli.register, ingest_cli.register,
            devtools_cli.register]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Python's final garbage collection walks TensorFlow's whole module graph: ~2 s on every worker stop and
    # every command. Frozen objects are skipped; files and sockets are closed by the commands themselves.
    atexit.register(gc.freeze)
    from nirstream.core.framework_output import framework_log_path, send_framework_output_to

    if args.command in CONSOLE_COMMANDS_THAT_FIT:  # services log to their collectors; these talk to a person
        send_framework_output_to(framework_log_path())  # TensorFlow/absl lines and warnings: a file, not the console
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    from nirstream.core.errors import DatasetUnavailable
    from nirstream.core.extras import needs_training_install, training_install_hint
    from nirstream.core.artifacts.manifest import ArtifactError  # bundles and calibration transfers
    from nirstream.core.settings import SharedSettings
    from nirstream.kafka.connection_check import KafkaTlsError

    # a command's shared-settings file (--config of ingest, simulate, watch, models, transfer; train's --kafka-config)
    SharedSettings.default_config_file = getattr(args, "shared_config", None)
    try:
        return args.handler(args)
    except (ArtifactError, DatasetUnavailable, FileNotFoundError, KafkaTlsError, KeyError, ValueError) as exc:
        print(f"nirstream: error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:  # a training command in a serving-only install: one line, no traceback
        if not needs_training_install(exc):
            raise
        command = " ".join(filter(None, (args.command, getattr(args, f"{args.command}_command", None))))
        print(training_install_hint(f"nirstream {command}", exc), file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
