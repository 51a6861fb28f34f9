"""Plant data for retraining: labelled pairs (spectrum + lab value) from the stream's labelled topic."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import ValidationError

from nirstream.core.settings import client_options as environment_options
from nirstream.core.messages.common import WavelengthGrid
from nirstream.core.messages.labelled import LabelledPair
from nirstream.kafka.topic_reader import read_to_end

log = logging.getLogger(__name__)


async def _read_all(bootstrap_servers: str, topic: str, timeout: float, client_options: dict | None) -> list[LabelledPair]:
    options = client_options or environment_options(bootstrap_servers)
    records = [_parse(m.value) async for m in read_to_end(options, topic, timeout=timeout)]
    return [r for r in records if r is not None]


def _parse(raw: bytes) -> LabelledPair | None:
    try:
        return LabelledPair.model_validate_json(raw)
    except ValidationError:
        log.warning("skipping a message on the labelled topic that is not a LabelledPair")
        return None


def labelled_frame(pairs: list[LabelledPair], targets: list[str], grid: WavelengthGrid) -> pd.DataFrame:
    """One row per labelled spectrum on ``grid`` whose lab measured every one of ``targets``; others are skipped, and
    so are repeats (a worker that crashed mid-batch may publish a pair again, with the same message id)."""
    first = {}
    for pair in pairs:
        first.setdefault(pair.message_id, pair)
    rows = [p for p in first.values() if p.grid == grid and all(t in p.reference for t in targets)]
    return training_frame([p.sample_id for p in rows], [p.reference for p in rows], [p.values for p in rows], targets, grid)


def training_frame(sample_ids: list[str], references: list[dict[str, float]], spectra: list, targets: list[str],
                   grid: WavelengthGrid) -> pd.DataFrame:
    """The table ``nirstream train --extra-training`` reads: sample id, one column per target, one per wavelength."""
    columns = [f"{w:.4f}" for w in grid.wavelengths()]
    frame = pd.DataFrame(np.array(spectra, dtype=np.float64).reshape(len(spectra), grid.count), columns=columns)
    for target in reversed(targets):
        frame.insert(0, target, [r[target] for r in references])
    frame.insert(0, "sample_id", list(sample_ids))
    return frame


def export_labelled(bootstrap_servers: str, topic: str, targets: list[str], grid: WavelengthGrid, destination: Path,
                    timeout: float = 30.0, client_options: dict | None = None) -> int:
    """Write the topic's labelled spectra with lab values for all ``targets`` on ``grid`` as CSV; return how many rows."""
    records = asyncio.run(_read_all(bootstrap_servers, topic, timeout, client_options))
    frame = labelled_frame(records, targets, grid)
    destination.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(destination, index=False)
    return len(frame)
