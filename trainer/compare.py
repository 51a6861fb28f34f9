"""Compare the CNN with PLS (LVs by cross-validation, and the test-set oracle) on a protocol.

    python -m nirstream.trainer.compare --protocol same-instrument --protocol cross-instrument \
        --variant augment+emsc --seeds 0 3 --ensemble-size 3 --output results.json

Each ``--seeds`` value is the base seed of one independent CNN run; with ``--ensemble-size N``
a run is an N-member seed ensemble (seeds base..base+N-1) averaged into one model, and the
report also lists every member alone and the member a validation-only choice would pick.
Protocols that share training and validation data (same- and cross-instrument) reuse one
CNN fit per base seed. PLS is reported for the untreated spectra and for the CNN's variant.
With ``--output`` the JSON is rewritten after every run, so an interrupted comparison
keeps what it finished.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from nirstream.trainer.cnn import ENSEMBLE_MODES, CNNRegressor
from nirstream.trainer.comparison import compare, format_table
from nirstream.trainer.data_splits import PROTOCOLS
from nirstream.trainer.variants import VARIANTS, variant_steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nirstream.trainer.compare", description=__doc__.splitlines()[0])
    defaults = CNNRegressor()
    parser.add_argument("--protocol", action="append", choices=PROTOCOLS,
                        help="repeatable; default same-instrument")
    parser.add_argument("--variant", choices=VARIANTS, default="augment+emsc")
    parser.add_argument("--target", default=None, help="default: assay for tablets, fat for tecator")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--n-copies", type=int, default=50, help="augmented copies per training spectrum")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--optimizer", choices=("adam", "adadelta"), default=defaults.optimizer)
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    parser.add_argument("--ensemble-size", type=int, default=defaults.ensemble_size,
                        help="CNN members per run (seeds base..base+N-1), averaged into one model")
    parser.add_argument("--ensemble-mode", choices=ENSEMBLE_MODES, default=defaults.ensemble_mode)
    parser.add_argument("--no-history", action="store_true", help="leave per-epoch curves out of the JSON")
    parser.add_argument("--no-cnn", action="store_true", help="PLS figures only")
    parser.add_argument("--output", type=Path, help="write the full results (with training curves) as JSON")
    parser.add_argument("--quiet", action="store_true", help="no per-epoch progress lines")
    args = parser.parse_args(argv)

    preprocessor, augmenter = variant_steps(args.variant, n_copies=args.n_copies)
    regressor = CNNRegressor(preprocessor, augmenter, epochs=args.epochs, batch_size=args.batch_size,
                             optimizer=args.optimizer, learning_rate=args.learning_rate,
                             ensemble_size=args.ensemble_size, ensemble_mode=args.ensemble_mode)

    def checkpoint(results: dict) -> None:
        if args.output:
            args.output.parent.mkdir(parents=True, exist_ok=True)
            args.output.write_text(json.dumps({"command": "python -m nirstream.trainer.compare " + " ".join(argv or sys.argv[1:]),
                                               **results}, indent=1))

    results = compare(args.protocol or ["same-instrument"], regressor, args.variant, args.seeds, args.target,
                      run_cnn=not args.no_cnn, verbose=0 if args.quiet else 2, checkpoint=checkpoint,
                      keep_history=not args.no_history)
    checkpoint(results)
    print(format_table(results))
    if args.output:
        print(f"\nwrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
