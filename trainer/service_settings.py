"""The trainer service's settings: the shared tree (Kafka, security, topics, registry) plus the plant data store,
the retraining policy and the time-forward promotion gate. Same sources and precedence as every command:
explicit arguments > ``NIRSTREAM_*`` environment (``NIRSTREAM_RETRAIN__MIN_NEW_PAIRS``) > ``--config`` TOML
(tables ``[retrain]``, ``[gate]``) > the defaults stated here, each with the reason it has that value."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from nirstream.core.settings import SharedSettings


class RetrainPolicy(BaseModel):
    """When a retrain starts. Floors from ISO 12099 (at least 10 samples to set a bias, 20 to estimate SEP)."""

    model_config = ConfigDict(extra="forbid")

    min_new_pairs: int = Field(default=20, ge=1, description="Retrain after this many lab pairs newer than the "
                                                              "champion's training (ISO 12099's 20 for a SEP)")
    bias_window: int = Field(default=20, ge=10, description="An analyzer's most recent pairs the bias test reads")
    bias_min_pairs: int = Field(default=10, ge=10, description="No bias verdict from fewer pairs (ISO 12099: 10)")
    bias_k: float = Field(default=3.0, gt=0, description="Bias significant when |mean error| > k standard errors "
                                                         "(3: the control-chart limit ASTM D6122 charts use)")
    min_interval_minutes: float = Field(default=60.0, ge=0, description="Never start retrains more often")
    bias_correction: bool = Field(default=True, description="When an analyzer's bias is significant and no retrain "
                                                            "starts, publish a slope/bias correction that its newest "
                                                            "pairs show to help (gate.mode automatic only; proposed "
                                                            "mode logs it)")
    training_windows: list[str] = Field(
        default_factory=lambda: ["all", "recent-40", "recent-40-x3"],
        description="Which plant pairs a retrain may train on (all; recent-N: forget older ones; recent-N-xW: the newest "
                    "N weigh W times); each retrain chooses among them time-forward on its newest training pairs")
    timeout_minutes: float = Field(default=30.0, gt=0, description="A retrain running longer is killed (and counted "
                                                                   "as failed); the champion keeps serving")


class GatePolicy(BaseModel):
    """How a candidate is judged against the champion: on the newest lab pairs it did not train on."""

    model_config = ConfigDict(extra="forbid")

    holdout_pairs: int = Field(default=20, ge=10, description="The newest pairs by lab time, held out of training")
    confidence: float = Field(default=0.95, gt=0.5, lt=1, description="Of the paired bootstrap intervals")
    mode: Literal["propose", "automatic"] = Field(
        default="propose", description="propose: a passing candidate waits for `nirstream models approve` by a named "
                                       "person (21 CFR Part 11 change control); automatic: it is promoted at once")


class GuardPolicy(BaseModel):
    """After a promotion: roll back when the new champion's first lab pairs are worse than the previous one's last."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    pairs: int = Field(default=20, ge=10, description="The new champion's first pairs (ISO 12099's 20 for a SEP)")


class TrainerServiceSettings(SharedSettings):
    """``nirstream trainer``: the shared tree plus the service's own settings."""

    group_id: str = Field(default="nirstream-trainer", description="The trainer's own consumer group on the "
                                                                   "labelled topic")
    store: Path = Field(default=Path("plant-data/pairs.sqlite"), description="The plant data store (SQLite file)")
    web_host: str = "127.0.0.1"
    web_port: int = Field(default=6067, description="Port of /metrics, /health and /ready")
    base_training: dict[str, Any] = Field(
        default_factory=dict, description="What a retrain trains on besides the stored plant pairs: `nirstream train`'s "
                                          "settings (TOML table [base_training], e.g. protocol = \"same-instrument\" or "
                                          "data = {path = ...}); the champion's targets unless it names its own")
    check_seconds: float = Field(default=10.0, gt=0, description="How often the retraining policy is consulted")
    workdir: Path = Field(default=Path("plant-data/retrains"), description="Retrain children's logs, reports, outcomes")
    retrain: RetrainPolicy = RetrainPolicy()
    gate: GatePolicy = GatePolicy()
    guard: GuardPolicy = GuardPolicy()
