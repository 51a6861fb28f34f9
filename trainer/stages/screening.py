"""Stage 0: screen every spectrum of every split with the worker's own screen, before anything is fitted.

The worker dead-letters a spectrum that is not finite (``validation.non_finite_rows``) or degenerate
(``SpectralPreprocessor.screen_transform``: constant, no usable signal, overflowing). Training on such a
spectrum fails only deep inside a fit (a constant spectrum has no SNV/EMSC scale: NaN), after minutes,
naming no row; so they are found here, left out, and listed by split, row and sample id. In test
splits they count as "not predicted: degenerate", as the worker would dead-letter them.

The degenerate screen's spread floor is learnt from training spectra: it is fitted on the training
split without the spectra already left out, until no more are found (a constant spectrum in the
training split would otherwise set the floor to zero).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace

import numpy as np

from nirstream.core.chemometrics.spectral_preprocessor import SpectralPreprocessor
from nirstream.core.messages.spectrum_checks import non_finite_detail, non_finite_rows
from nirstream.core.errors import RejectReason
from nirstream.trainer.data_splits import Protocol

log = logging.getLogger(__name__)

MAX_SCREEN_ROUNDS = 5  # each round refits the floor without the spectra found so far; one or two suffice in practice


@dataclass(frozen=True)
class LeftOutSpectrum:
    split: str  # train, validation, gate or a test set's name
    row: int  # 1-based row within the split
    sample: str  # the sample id (the file's row number when the file has no id column)
    reason: str  # the worker's dead-letter reason: degenerate or non_finite
    detail: str

    def describe(self) -> str:
        return describe_left_out(asdict(self))


@dataclass
class ScreenedData:
    protocol: Protocol  # every split without the left-out spectra
    left_out: list[LeftOutSpectrum]

    def as_report(self) -> list[dict]:
        return [asdict(spectrum) for spectrum in self.left_out]

    def not_predicted(self) -> dict[str, dict[str, int]]:
        """Per test set: how many spectra were not predicted, by reason."""
        counts: dict[str, dict[str, int]] = {}
        for spectrum in self.left_out:
            if spectrum.split in self.protocol.tests:
                per_reason = counts.setdefault(spectrum.split, {})
                per_reason[spectrum.reason] = per_reason.get(spectrum.reason, 0) + 1
        return counts


def describe_left_out(entry: dict) -> str:
    """One left-out spectrum in words, from its report entry."""
    return f"{entry['split']} row {entry['row']} (sample {entry['sample']}): {entry['reason']}: {entry['detail']}"


def screen_protocol(protocol: Protocol) -> ScreenedData:
    splits = {"train": protocol.train, "validation": protocol.validation,
              **({"gate": protocol.gate} if protocol.gate is not None else {}), **protocol.tests}
    # split -> row -> (reason, detail) of the spectra the worker would dead-letter
    rejected = {name: {int(i): (RejectReason.NON_FINITE.value, non_finite_detail(data.X[i]))
                       for i in np.flatnonzero(non_finite_rows(data.X))} for name, data in splits.items()}
    for _ in range(MAX_SCREEN_ROUNDS):
        screen = _fit_screen(protocol, _without(splits["train"].X, rejected["train"]))
        found = False
        for name, data in splits.items():
            unscreened = np.setdiff1d(np.arange(data.n_samples), list(rejected[name]))
            if not unscreened.size:
                continue
            screened = screen.screen_transform(data.X[unscreened])
            for i, detail in zip(unscreened[screened.degenerate], screened.details[screened.degenerate], strict=True):
                rejected[name][int(i)] = (RejectReason.DEGENERATE.value, detail)
                found = True
        if not found:
            break
    _describe_with_final_floor(protocol, splits, rejected)
    left_out = [LeftOutSpectrum(name, i + 1, splits[name].sample_names[i], *rejected[name][i])
                for name in splits for i in sorted(rejected[name])]
    for spectrum in left_out:
        log.warning("left out (the worker would dead-letter it): %s", spectrum.describe())
    kept = {name: data.rows(np.setdiff1d(np.arange(data.n_samples), list(rejected[name]))) if rejected[name] else data
            for name, data in splits.items()}
    cleaned = replace(protocol, train=kept["train"], validation=kept["validation"], test=kept.get("test", protocol.test),
                      extra_tests={n: kept[n] for n in protocol.extra_tests}, gate=kept.get("gate"))
    return ScreenedData(cleaned, left_out)


def _describe_with_final_floor(protocol: Protocol, splits: dict, rejected: dict) -> None:
    """A spectrum found while a degenerate training spectrum still set the floor is described with the floor the
    clean training spectra give (the one a model fitted on them would screen with)."""
    screen = _fit_screen(protocol, _without(splits["train"].X, rejected["train"]))
    for name, data in splits.items():
        rows = np.array([i for i, (reason, _) in rejected[name].items() if reason == RejectReason.DEGENERATE.value], dtype=int)
        if rows.size:
            screened = screen.screen_transform(data.X[rows])
            for i, detail in zip(rows[screened.degenerate], screened.details[screened.degenerate], strict=True):
                rejected[name][int(i)] = (RejectReason.DEGENERATE.value, detail)


def _without(X: np.ndarray, rows: dict[int, tuple[str, str]]) -> np.ndarray:
    return np.delete(X, list(rows), axis=0) if rows else X


def _fit_screen(protocol: Protocol, training_spectra: np.ndarray) -> SpectralPreprocessor:
    """The worker's screen on the model's window, its limits learnt from ``training_spectra`` (nothing else fitted
    that a degenerate spectrum could break: no EMSC, no derivative, no SNV)."""
    first, last = protocol.window_nm or (None, None)
    return SpectralPreprocessor(protocol.train.wavelengths, first, last, emsc_order=None).fit(training_spectra)
