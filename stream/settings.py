"""Worker settings: environment variables (``NIRSTREAM_...``), an optional TOML file, defaults.

Precedence: explicit arguments > environment > ``--config`` file > defaults. Nested fields use
``__`` in environment names, e.g. ``NIRSTREAM_TOPICS__SPECTRA`` or ``NIRSTREAM_SECURITY__PROTOCOL``.
Secrets (SASL password) come only from the environment or a file outside the repo.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from nirstream.core.connection import KafkaSecurity


class TopicNames(BaseModel):
    spectra: str = "nirstream.spectra"
    predictions: str = "nirstream.predictions"
    deadletter: str = "nirstream.deadletter"
    models: str = "nirstream.models"
    reference: str = "nirstream.reference"
    labelled: str = "nirstream.labelled"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NIRSTREAM_", env_nested_delimiter="__", extra="ignore")
    config_file: ClassVar[Path | None] = None

    bootstrap_servers: str = Field(default="127.0.0.1:9092", description="Kafka bootstrap servers, comma separated")
    group_id: str = Field(default="nirstream-worker", description="Consumer group shared by all workers")
    topics: TopicNames = TopicNames()
    security: KafkaSecurity = KafkaSecurity()
    spectra_partitions: int = Field(default=4, ge=1, description="Partitions when the worker creates topics")
    max_batch_size: int = Field(default=256, ge=1, le=65536, description="Most spectra per model call")
    batch_timeout_ms: int = Field(default=20, ge=0, description="Longest wait to fill a batch")
    fetch_max_wait_ms: int = Field(default=10, ge=0, description="Longest the broker may hold a fetch when no data is waiting")
    max_message_bytes: int = Field(default=1_000_000, ge=1024, description="Larger messages are dead-lettered")
    registry: Path = Field(default=Path("models"), description="Model registry directory")
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
    rmsep_window: int = Field(default=100, ge=2, description="Joined pairs in the rolling RMSEP/bias")
    worker_name: str = Field(default="", description="Shown in dead letters and logs; host:pid when empty")

    @classmethod
    def settings_customise_sources(
        cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings, file_secret_settings]
        if cls.config_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=cls.config_file))
        return tuple(sources)

    @classmethod
    def load(cls, config_file: str | Path | None = None, **overrides: Any) -> Settings:
        if config_file is not None and not Path(config_file).exists():
            raise FileNotFoundError(f"config file {config_file} does not exist")
        cls.config_file = Path(config_file) if config_file else None
        try:
            return cls(**{k: v for k, v in overrides.items() if v is not None})
        finally:
            cls.config_file = None

    def kafka_client_options(self) -> dict[str, Any]:
        """Connection options for aiokafka consumers, producers and admin clients."""
        return self.security.client_options(self.bootstrap_servers)
