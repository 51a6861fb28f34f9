"""Topic ``nirstream.labelled``: a prediction joined with its lab value, with the spectrum: training data.

``LabelledPair`` is the definition; ``labelled_pair`` and ``encode_labelled`` write the same fields fast
(a dict, then orjson), and tests/test_messages.py validates their output with the model.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import numpy as np
import orjson
from pydantic import BaseModel, ConfigDict, Field

from nirstream.core.messages.common import SCHEMA_VERSION, AnalyzerId, SchemaVersion, WavelengthGrid

JoinedBy = Literal["sample_id", "time_nearest", "time_mean"]


class LabelledPair(BaseModel):
    """What the worker publishes when a prediction meets its lab value (the trainer's plant data)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: SchemaVersion = SCHEMA_VERSION
    sample_id: str = Field(min_length=1, max_length=128)
    analyzer_id: AnalyzerId
    message_id: str
    model_version: str
    predicted: dict[str, float] = Field(min_length=1, description="Target -> predicted value, for every target the lab measured")
    reference: dict[str, Annotated[float, Field(allow_inf_nan=False)]] = Field(min_length=1, description="Target -> lab value")
    error: dict[str, float] = Field(description="Target -> predicted - reference")
    flag: Literal["ok", "warning", "outlier"]
    measured_at: datetime = Field(description="When the lab measured the sample")
    grid: WavelengthGrid
    values: list[float] = Field(min_length=1, max_length=100_000, description="The spectrum, on grid")
    joined_by: JoinedBy = Field(default="sample_id", description="How the lab value found its spectrum: by sample id, "
                                "or by sampling time (the nearest spectrum, or the mean of the window's spectra)")
    spectra_averaged: int = Field(default=1, ge=1, description="Spectra averaged into values and predicted (time_mean)")
    spectrum_at: datetime | None = Field(default=None, description="When the analyzer acquired the spectrum (time_mean: "
                                                                   "the mean acquisition time)")
    sampled_at: datetime | None = Field(default=None, description="When the lab took the sample (pairs joined by time)")


def labelled_pair(*, sample_id: str, analyzer_id: str, message_id: str, model_version: str, predicted: dict[str, float],
                  reference: dict[str, float], flag: str, measured_at: datetime, grid: dict, values: np.ndarray,
                  joined_by: JoinedBy = "sample_id", spectra_averaged: int = 1, spectrum_at: datetime | None = None,
                  sampled_at: datetime | None = None) -> dict:
    """A ``LabelledPair``'s fields as a dict (the error computed), for ``encode_labelled``; ``predicted`` and
    ``reference`` hold the same targets."""
    return {
        "schema_version": SCHEMA_VERSION,
        "sample_id": sample_id,
        "analyzer_id": analyzer_id,
        "message_id": message_id,
        "model_version": model_version,
        "predicted": predicted,
        "reference": reference,
        "error": {t: predicted[t] - reference[t] for t in predicted},
        "flag": flag,
        "measured_at": measured_at,
        "grid": grid,
        "values": values,
        "joined_by": joined_by,
        "spectra_averaged": spectra_averaged,
        "spectrum_at": spectrum_at,
        "sampled_at": sampled_at,
    }


def encode_labelled(pair: dict) -> tuple[bytes, bytes]:
    """Key (analyzer id) and value of a ``labelled_pair`` on the labelled topic."""
    return pair["analyzer_id"].encode(), orjson.dumps(pair, option=orjson.OPT_SERIALIZE_NUMPY)
