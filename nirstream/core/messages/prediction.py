"""Topic ``nirstream.predictions``: one prediction per valid spectrum, keyed like the spectrum.

``PredictionMessage`` is the definition; the worker's hot path encodes the same fields with
orjson (``stream/batch_processing.py``), and tests round-trip that output through this model.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from nirstream.core.messages.common import SCHEMA_VERSION, AnalyzerId, OptionalLabel, SchemaVersion, utc_now


class OutlierStatistics(BaseModel):
    """Applicability-domain statistics of one spectrum against the model's training data."""

    model_config = ConfigDict(frozen=True)

    hotelling_t2: float
    q_residual: float
    t2_limit_95: float
    t2_limit_99: float
    q_limit_95: float
    q_limit_99: float
    flag: Literal["ok", "warning", "outlier"] = Field(
        description="ok: inside both 95 % limits; warning: beyond a 95 % limit; outlier: beyond a 99 % limit",
    )


class PredictionTimings(BaseModel):
    model_config = ConfigDict(frozen=True)

    batch_size: int = Field(ge=1)
    queue_ms: float = Field(ge=0, description="Received by the worker until its batch started")
    preprocess_ms: float = Field(ge=0, description="Decode, validation and EMSC, for the whole batch")
    inference_ms: float = Field(ge=0, description="Model call for the whole batch")
    end_to_end_ms: float | None = Field(default=None, description="Spectrum timestamp until prediction (clock skew applies)")


class PredictionInterval(BaseModel):
    """Where the lab value lies with probability ``coverage`` (calibrated on validation data when the model was trained)."""

    model_config = ConfigDict(frozen=True)

    low: float
    high: float
    coverage: float = Field(gt=0, lt=1)


class PredictionMessage(BaseModel):
    """One prediction per valid spectrum, keyed like the spectrum (by analyzer id)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: SchemaVersion = SCHEMA_VERSION
    analyzer_id: AnalyzerId
    sequence: int = Field(ge=0)
    message_id: str
    sample_id: OptionalLabel = None
    batch_id: OptionalLabel = None
    spectrum_timestamp: datetime
    predicted_at: datetime = Field(default_factory=utc_now)
    model_version: str
    predictions: dict[str, float] = Field(description="Target name -> predicted value")
    units: dict[str, str] = Field(default_factory=dict, description="Target name -> unit")
    intervals: dict[str, PredictionInterval] | None = Field(
        default=None, description="Target name -> prediction interval (absent when the model has none)")
    ensemble_spread: dict[str, float] | None = Field(
        default=None, description="Target name -> standard deviation of the seed-ensemble members' predictions: "
                                  "how much the members disagree (model uncertainty only; the interval is the calibrated "
                                  "range). Absent for a single-network model")
    transfer: str | None = Field(default=None, description="The analyzer's calibration transfer applied (method#number, "
                                                            "e.g. pds#2); absent when none was")
    outlier: OutlierStatistics | None = None
    timings: PredictionTimings | None = None
