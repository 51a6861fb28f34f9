"""The data a ``nirstream train`` run reads: the user's file or a built-in protocol, plus extra training rows."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np

from nirstream.trainer.data_splits import Protocol, load_protocol, protocol_from_data
from nirstream.trainer.train_settings import TrainSettings

log = logging.getLogger(__name__)


def load_training_protocol(settings: TrainSettings) -> Protocol:
    """Train / validation / test of the user's file or the built-in protocol, plus any extra training rows."""
    protocol = (protocol_from_data(settings.data) if settings.data
                else load_protocol(settings.protocol, settings.targets, full_grid=True))
    return _with_extra_training(protocol, settings.extra_training) if settings.extra_training else protocol


def _with_extra_training(protocol: Protocol, path: Path) -> Protocol:
    """Append labelled plant spectra (same grid, the protocol's targets) to the training set."""
    from nirstream.core.datasets import load_table

    train = protocol.train
    extra = load_table(path, target_columns=list(protocol.targets))
    if extra.wavelengths.shape != train.wavelengths.shape or not np.allclose(extra.wavelengths, train.wavelengths, atol=0.01):
        raise ValueError(f"{path}: wavelength grid differs from the training data")
    combined = replace(
        train,
        X=np.vstack([train.X, extra.X]),
        y=np.vstack([protocol.y(train), protocol.y(extra)]),
        target_names=protocol.targets,
        units=tuple(protocol.unit(t) for t in protocol.targets),
        sample_names=train.sample_names + extra.sample_names,
    )
    log.info("training on %d spectra (%d added from %s)", combined.n_samples, extra.n_samples, path)
    return replace(protocol, train=combined)


