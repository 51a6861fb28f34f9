"""Topic ``nirstream.labelled``: a prediction joined with its lab value, with the spectrum: training data."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from nirstream.core.messages.common import SCHEMA_VERSION, AnalyzerId, SchemaVersion, WavelengthGrid


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
