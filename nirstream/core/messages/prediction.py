"""Topic ``nirstream.predictions``: one prediction per valid spectrum, keyed like the spectrum.

``PredictionMessage`` is the definition; ``PredictionEncoder`` writes the same fields fast for the
worker's hot path (orjson, a batch's shared fields spliced in), and tests/test_messages.py validates
its output with the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from nirstream.core.messages.common import SCHEMA_VERSION, AnalyzerId, OptionalLabel, SchemaVersion, utc_now
from nirstream.core.messages.spectrum import SpectrumHeader


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


class PredictionEncoder:
    """Encodes one batch's ``PredictionMessage``s fast: what every message of the batch shares (model, units, outlier
    limits, batch timings) is serialised once and spliced in; each message's own fields go through orjson together."""

    def __init__(self, *, model_version: str, targets: Sequence[str], units: dict[str, str], predicted_at: datetime,
                 t2_limits: tuple[float, float], q_limits: tuple[float, float], interval_coverage: float | None,
                 batch_size: int, preprocess_seconds: float, inference_seconds: float) -> None:
        """``t2_limits``, ``q_limits``: the 95 % and 99 % limits; ``interval_coverage``: None when the model has no
        intervals."""
        self.targets, self.interval_coverage = list(targets), interval_coverage
        self._shared = _members({"schema_version": SCHEMA_VERSION, "predicted_at": predicted_at,
                                 "model_version": model_version, "units": units})
        self._limits = _members({"t2_limit_95": t2_limits[0], "t2_limit_99": t2_limits[1],
                                 "q_limit_95": q_limits[0], "q_limit_99": q_limits[1]})
        self._timings = _members({"batch_size": batch_size, "preprocess_ms": _milliseconds(preprocess_seconds),
                                  "inference_ms": _milliseconds(inference_seconds)})

    def encode(self, headers: Sequence[SpectrumHeader], values: list[list[float]], *, hotelling_t2: list[float],
               q_residual: list[float], flags: list[str], queue_seconds: list[float], lows: list[list[float]] | None = None,
               highs: list[list[float]] | None = None, spreads: list[list[float]] | None = None,
               transfers: Sequence[str] | None = None) -> list[bytes | Exception]:
        """One message per spectrum header, or the error that stopped it; the other arguments are columns, one row per
        header: ``values``, the interval's ``lows`` and ``highs`` and ``spreads`` hold one number per target,
        ``transfers`` '' where none was applied, ``queue_seconds`` from arrival until the batch started."""
        targets, coverage, shared, limits, timings = (self.targets, self.interval_coverage, self._shared, self._limits,
                                                      self._timings)
        encoded: list[bytes | Exception] = []
        for i, header in enumerate(headers):
            try:
                own = {"analyzer_id": header.analyzer_id, "sequence": header.sequence, "message_id": header.message_id,
                       "spectrum_timestamp": header.timestamp, "predictions": dict(zip(targets, values[i], strict=True))}
                intervals = ({t: {"low": low, "high": high, "coverage": coverage}
                              for t, low, high in zip(targets, lows[i], highs[i], strict=True)} if lows else None)
                spread = dict(zip(targets, spreads[i], strict=True)) if spreads else None
                transfer = transfers[i] or None if transfers is not None else None
                for name, value in (("sample_id", header.sample_id), ("batch_id", header.batch_id),
                                    ("intervals", intervals), ("ensemble_spread", spread), ("transfer", transfer)):
                    if value is not None:
                        own[name] = value
                outlier = _members({"hotelling_t2": hotelling_t2[i], "q_residual": q_residual[i], "flag": flags[i]})
                encoded.append(b"".join((b"{", shared, b",", _members(own), b',"outlier":{', outlier, b",", limits,
                                         b'},"timings":{', timings, b',"queue_ms":',
                                         orjson.dumps(_milliseconds(queue_seconds[i])), b"}}")))
            except Exception as exc:  # noqa: BLE001 - the caller decides what an unencodable prediction becomes
                encoded.append(exc)
        return encoded


def _members(mapping: dict) -> bytes:
    """A JSON object's members without its braces, to splice into a larger object."""
    return orjson.dumps(mapping)[1:-1]


def _milliseconds(seconds: float) -> float:
    return round(seconds * 1e3, 3)
