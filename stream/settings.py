"""The worker's settings: the shared tree (Kafka, security, topics, registry; ``nirstream.core.settings``)
plus batching, monitoring and web settings; ``OpcUaSettings``: the same tree plus the OPC UA server's.
Same sources and precedence: explicit arguments > ``NIRSTREAM_*`` environment > ``--config`` TOML file
(unknown keys refused) > defaults.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from nirstream.core.settings import SharedSettings, TopicNames

__all__ = ["OpcUaOptions", "OpcUaSettings", "Settings", "TopicNames"]


class Settings(SharedSettings):
    group_id: str = Field(default="nirstream-worker", description="Consumer group shared by all workers")
    spectra_partitions: int = Field(default=4, ge=1, description="Partitions when the worker creates topics")
    max_batch_size: int = Field(default=256, ge=1, le=65536, description="Most spectra per model call")
    batch_timeout_ms: int = Field(default=0, ge=0, description="Longest wait to fill a batch after its first record "
                                  "(0: a batch is what has arrived; batches grow by themselves while the worker is busy, "
                                  "and a wait only delays spectra at low rates)")
    fetch_max_wait_ms: int = Field(default=10, ge=0, description="Longest the broker may hold a fetch when no data is waiting")
    registry_poll_seconds: float = Field(default=5.0, gt=0, description="Fallback poll of the champion pointer")
    web_host: str = "127.0.0.1"
    web_port: int = Field(default=6066, description="Port of /metrics, /health and /ready")
    session_timeout_ms: int = Field(default=6000, description="Short: the embedded broker holds JoinGroup for half of it")
    heartbeat_interval_ms: int = 1000
    saturation_limit: float | None = Field(default=None, description="Detector ceiling; spectra reaching it are dead-lettered")
    known_analyzers: list[str] | None = Field(default=None, description="If set, spectra from other analyzers are dead-lettered")
    max_analyzer_labels: int = Field(default=100, description="Bound on per-analyzer metric label values")
    join_retention_seconds: float = Field(default=6 * 3600, gt=0, description="How long a prediction waits for its lab value")
    join_capacity: int = Field(default=20_000, ge=1, description="Most predictions (with spectra) kept for the lab join")
    time_join_analyzers: list[str] = Field(
        default_factory=list, description="Analyzers on continuous processes (['*']: every analyzer): their spectra "
        "without sample id are kept, in memory and the changelog, for lab values joined by sampling time. Opt-in: "
        "each kept spectrum is one more changelog record, a cost lines joined by sample id need not pay")
    time_join_window_seconds: float = Field(
        default=300.0, gt=0, description="A lab value joined by time takes its analyzer's spectra acquired within this "
        "many seconds either side of its sampling time: wide enough for a sampling time noted to the minute and a "
        "LIMS clock a little off the analyzer's, narrow against the process moving on")
    time_join_mode: Literal["nearest", "mean"] = Field(
        default="nearest", description="nearest: the spectrum acquired closest to the sampling time and the prediction "
        "the plant saw; mean: the mean spectrum and prediction of the window (less noise, for fast noisy analyzers)")
    time_join_capacity: int = Field(default=4320, ge=1, description="Most spectra kept per analyzer for the join by "
                                                                    "time (6 h at one spectrum every 5 s)")
    rmsep_window: int = Field(default=100, ge=2, description="Joined pairs in the rolling RMSEP/bias")
    worker_name: str = Field(default="", description="Shown in dead letters and logs; host:pid when empty")


class OpcUaOptions(BaseModel):
    """The OPC UA server's own settings (``NIRSTREAM_OPCUA__*``, TOML table ``[opcua]``)."""

    model_config = ConfigDict(extra="forbid")

    endpoint: str = Field(default="opc.tcp://0.0.0.0:4840/nirstream/",
                          pattern=r"^opc\.tcp://(\[[0-9A-Fa-f:.]+\]|[^/:\[\]]+):\d+(/.*)?$",
                          description="Where the server listens (opc.tcp://HOST:PORT/PATH)")
    namespace_uri: str = Field(default="urn:nirstream", min_length=1, description="Namespace of nirstream's nodes")
    security_mode: Literal["None", "SignAndEncrypt"] = Field(
        default="None", description="None (trials, only with allow_insecure) or SignAndEncrypt with Basic256Sha256 "
                                    "(plants; needs the certificate, private key and trusted_clients)")
    allow_insecure: bool = Field(
        default=False, description="Let security mode None serve: anyone who reaches the port reads every value, "
                                   "unauthenticated and in clear text (demo, tests, a trial on one machine)")
    certificate: Path | None = Field(default=None, description="Server certificate (DER or PEM) for SignAndEncrypt")
    private_key: Path | None = Field(default=None, description="Its private key (PEM or DER, unencrypted)")
    trusted_clients: Path | None = Field(
        default=None, description="Folder of client certificates (or their CAs) allowed to connect; SignAndEncrypt "
                                  "refuses to start without it (an empty trust list would accept every certificate)")
    stale_seconds: float = Field(default=60.0, gt=0, description="A value with no newer prediction for this long turns Bad")
    max_outputs: int = Field(default=10_000, ge=1, description="Most analyzer/target outputs in the address space; "
                                                               "predictions for further ones are skipped and counted")
    max_batch_size: int = Field(default=500, ge=1, description="Most prediction records per read")
    web_host: str = Field(default="127.0.0.1", description="Address of /metrics, /health and /ready")
    web_port: int = Field(default=6068, ge=1, le=65535, description="Port of /metrics, /health and /ready")


class OpcUaSettings(SharedSettings):
    """``nirstream opcua``: the shared tree (Kafka, security, topics) plus the OPC UA server's options."""

    opcua: OpcUaOptions = OpcUaOptions()
