"""Stage 0b: the spectral region every family sees (PLS and the CNN alike), before anything is fitted.

A window the user gave (``--window-nm``) or the protocol states (the tablets' 600-1798 nm) is kept; otherwise, unless
``region`` is ``full``, the window comes from the training split by moving-window PLS cross-validation
(``nirstream.trainer.region_selection``): a file with dead or noisy edges gives a model of its informative region.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

from nirstream.trainer.data_splits import Protocol
from nirstream.trainer.region_selection import REGION_RULE, best_full_range_variant, chosen_window, score_windows
from nirstream.trainer.train_settings import TrainSettings
from nirstream.trainer.variants import PLS_VARIANTS

log = logging.getLogger(__name__)


@dataclass
class RegionChoice:
    window_nm: tuple[float, float] | None  # None: every channel
    how: str  # in words, for the report
    candidates: list[dict] = field(default_factory=list)  # each candidate's cross-validated score

    def as_report(self) -> dict:
        return {"window_nm": self.window_nm, "how": self.how, "candidates": self.candidates}


def choose_region(settings: TrainSettings, protocol: Protocol) -> tuple[Protocol, RegionChoice]:
    """The protocol with its window set, and how the window was chosen."""
    if protocol.window_nm is not None:
        return protocol, RegionChoice(protocol.window_nm, "given (--window-nm or the protocol's stated range)")
    if settings.region == "full":
        return protocol, RegionChoice(None, "every channel (region selection off)")
    train = protocol.train
    log.info("spectral region: moving-window PLS cross-validation on the %d training spectra", train.n_samples)
    variant = best_full_range_variant(train.X, protocol.y(train), protocol.targets, PLS_VARIANTS, settings.seed)
    scored = score_windows(train.X, protocol.y(train), train.wavelengths, protocol.targets, variant, settings.seed)
    chosen = chosen_window(scored)
    everything = chosen.start == 0 and chosen.stop == train.n_channels
    window = None if everything else (chosen.first_nm, chosen.last_nm)
    how = f"by cross-validation on the training split ({REGION_RULE}; scored with {variant}): " + (
        "every channel" if everything else f"{chosen.first_nm:g}-{chosen.last_nm:g} nm, {chosen.stop - chosen.start} "
                                           f"of {train.n_channels} channels")
    log.info("spectral region %s", how.rsplit(": ", 1)[-1])
    candidates = [dict(c.as_report(), chosen=c is chosen) for c in scored]
    return replace(protocol, window_nm=window), RegionChoice(window, how, candidates)
