"""Named evaluation protocols: which data trains, which early-stops, which tests.

The validation split only ever comes from the training instrument, and the test split is
never used to steer training (no early stopping, LR schedule or LV choice on it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nirstream.core.datasets import SpectralDataset, load_tablets, load_tecator

# The paper uses the first 600 channels, 600-1798 nm: the rest is noisy detector edge.
TABLET_RANGE_NM = (600.0, 1798.0)
PROTOCOLS = ("same-instrument", "cross-instrument", "tecator")
DEFAULT_TARGETS = {"same-instrument": "assay", "cross-instrument": "assay", "tecator": "fat"}


@dataclass(frozen=True)
class Protocol:
    """Train / validation / test sets for one experiment, plus optional extra test sets."""

    name: str
    target: str
    train: SpectralDataset
    validation: SpectralDataset
    test: SpectralDataset
    extra_tests: dict[str, SpectralDataset] = field(default_factory=dict)
    window_nm: tuple[float, float] | None = None  # channels the model sees; the rest is cut off

    def model_view(self, dataset: SpectralDataset) -> SpectralDataset:
        """The model's channels of ``dataset`` (a no-op on data already cut to the window)."""
        return dataset.channels(*self.window_nm) if self.window_nm else dataset

    def y(self, dataset: SpectralDataset):
        return dataset.target(self.target)

    @property
    def tests(self) -> dict[str, SpectralDataset]:
        """The main test set under the name ``test`` followed by the extra ones."""
        return {"test": self.test, **self.extra_tests}


def _tablets(instrument: int, full_grid: bool) -> SpectralDataset:
    tablets = load_tablets(instrument)
    return tablets if full_grid else tablets.channels(*TABLET_RANGE_NM)


def load_protocol(name: str, target: str | None = None, full_grid: bool = False) -> Protocol:
    """Build a named protocol: ``same-instrument``, ``cross-instrument`` or ``tecator``.

    * same-instrument: train calibrate_1, validate validate_1, test test_1.
    * cross-instrument: train calibrate_1, validate validate_1, test test_2; calibrate_2 and
      validate_2 come along as extra instrument-2 test sets (never used for training).
    * tecator: train ``train``, validate ``monitor``, test ``test``; target fat by default.

    With ``full_grid`` the tablet sets keep all 650 channels (what analyzers send) and
    ``model_view`` cuts the model's window; otherwise they come already cut.
    """
    if name not in PROTOCOLS:
        raise ValueError(f"unknown protocol {name!r}; choose from {', '.join(PROTOCOLS)}")
    target = target or DEFAULT_TARGETS[name]
    if name == "tecator":
        data = load_tecator()
        sets = {s: data.split(s) for s in ("train", "monitor", "test")}
        protocol = Protocol(name, target, sets["train"], sets["monitor"], sets["test"])
    else:
        first = _tablets(1, full_grid)
        train, validation = first.split("calibrate"), first.split("validate")
        if name == "same-instrument":
            protocol = Protocol(name, target, train, validation, first.split("test"), window_nm=TABLET_RANGE_NM)
        else:
            second = _tablets(2, full_grid)
            extra = {"calibrate_2": second.split("calibrate"), "validate_2": second.split("validate")}
            protocol = Protocol(name, target, train, validation, second.split("test"), extra, window_nm=TABLET_RANGE_NM)
    protocol.train.target(target)  # fail early on an unknown target name
    return protocol
