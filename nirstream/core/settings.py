"""The settings every nirstream command shares (pydantic-settings): Kafka connection and security, topic
names, the model registry. One definition, read from ``NIRSTREAM_*`` environment variables (nested fields
with ``__``: ``NIRSTREAM_TOPICS__SPECTRA``, ``NIRSTREAM_SECURITY__PROTOCOL``) and an optional TOML file.

Precedence: explicit arguments > environment > config file > defaults. A config file with a key no
setting has is refused with the key's name (a typo must not silently fall back to a default).
Secrets (SASL password) come only from the environment or a file outside the repo.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from nirstream.core.messages.limits import MAX_MESSAGE_BYTES


class KafkaSecurity(BaseModel):
    model_config = ConfigDict(extra="forbid")

    protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None

    def client_options(self, bootstrap_servers: str) -> dict[str, Any]:
        """Connection options for aiokafka consumers, producers and admin clients."""
        options: dict[str, Any] = {"bootstrap_servers": bootstrap_servers, "security_protocol": self.protocol}
        if self.protocol in ("SSL", "SASL_SSL"):
            context = ssl.create_default_context(cafile=str(self.ssl_cafile) if self.ssl_cafile else None)
            if self.ssl_certfile:
                context.load_cert_chain(str(self.ssl_certfile), str(self.ssl_keyfile) if self.ssl_keyfile else None)
            options["ssl_context"] = context
        if self.protocol.startswith("SASL"):
            options["sasl_mechanism"] = self.sasl_mechanism or "PLAIN"
            options["sasl_plain_username"] = self.sasl_username
            options["sasl_plain_password"] = self.sasl_password.get_secret_value() if self.sasl_password else None
        return options


class TopicNames(BaseModel):
    model_config = ConfigDict(extra="forbid")

    spectra: str = "nirstream.spectra"
    predictions: str = "nirstream.predictions"
    deadletter: str = "nirstream.deadletter"
    models: str = "nirstream.models"
    reference: str = "nirstream.reference"
    labelled: str = "nirstream.labelled"
    lab_join: str = "nirstream.lab-join"  # the worker's lab-join state (changelog; stream/join_state.py)


class ConfigFileError(ValueError):
    """A config file that does not exist or names settings that do not exist."""


class SharedSettings(BaseSettings):
    """Kafka, topics, registry, message size limit: what the worker, ``ingest``, ``train``, ``models``, ``simulate``,
    ``watch`` and ``demo`` share."""

    model_config = SettingsConfigDict(env_prefix="NIRSTREAM_", env_nested_delimiter="__", extra="forbid")
    config_file: ClassVar[Path | None] = None

    bootstrap_servers: str = Field(default="127.0.0.1:9092", description="Kafka bootstrap servers, comma separated")
    security: KafkaSecurity = KafkaSecurity()
    topics: TopicNames = TopicNames()
    registry: Path = Field(default=Path("models"), description="Model registry directory")
    max_message_bytes: int = Field(default=MAX_MESSAGE_BYTES, ge=1024,
                                   description="Larger spectrum messages are dead-lettered by the worker and rejected "
                                               "by the file bridge")
    user: str | None = Field(default=None, description="Who changes the registry, for its audit trail (a command's --by "
                                                       "wins); default the OS user at this host")
    # signed artifacts (nirstream/core/artifacts/signing.py, docs/security.md): paths only, never key material
    signing_key_file: Path | None = Field(
        default=None, description="ed25519 private key (PEM, `nirstream models keygen`) with which the trainer signs "
                                  "every bundle and transfer it publishes: a docker secret or a file outside the repo")
    trusted_keys_dir: Path | None = Field(
        default=None, description="Folder of public keys (*.pem): the worker and `evaluate` serve only artifacts "
                                  "signed by one of them")
    allow_unsigned: bool = Field(
        default=False, description="Also serve artifacts without a signature, and champions the audit trail does not "
                                   "account for (trials, the demo, tests); logged loudly")
    runtime: Literal["auto", "onnx", "keras"] = Field(
        default="auto", description="What runs a network: onnx (ONNX Runtime, no TensorFlow), keras (TensorFlow), or "
                                    "auto: keras when a GPU is present, else onnx when the bundle has model.onnx")

    @classmethod
    def settings_customise_sources(
        cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings, file_secret_settings]
        if cls.config_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=cls.config_file))
        return tuple(sources)

    @classmethod
    def load(cls, config_file: str | Path | None = None, **overrides: Any):
        """Settings from ``overrides`` (None values ignored), the environment, ``config_file`` (TOML), defaults."""
        if config_file is not None and not Path(config_file).exists():
            raise ConfigFileError(f"config file {config_file} does not exist")
        cls.config_file = Path(config_file) if config_file else None
        try:
            return cls(**{k: v for k, v in overrides.items() if v is not None})
        except ValidationError as exc:
            unknown = [".".join(map(str, e["loc"])) for e in exc.errors() if e["type"] == "extra_forbidden"]
            if unknown:
                raise ConfigFileError(f"{config_file or 'settings'}: unknown setting(s) {', '.join(unknown)}; "
                                      f"known: {', '.join(cls.model_fields)}") from None
            raise
        finally:
            cls.config_file = None

    def kafka_client_options(self) -> dict[str, Any]:
        """Connection options for aiokafka consumers, producers and admin clients."""
        return self.security.client_options(self.bootstrap_servers)


def client_options(bootstrap_servers: str | None = None) -> dict[str, Any]:
    """aiokafka options for ``bootstrap_servers`` (or NIRSTREAM_BOOTSTRAP_SERVERS) with the environment's security."""
    return SharedSettings.load(bootstrap_servers=bootstrap_servers).kafka_client_options()
