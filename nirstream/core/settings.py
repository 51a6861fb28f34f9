"""The settings every nirstream command shares (pydantic-settings): Kafka connection and security, topic
names, the model registry. One definition, read from ``NIRSTREAM_*`` environment variables (nested fields
with ``__``: ``NIRSTREAM_TOPICS__SPECTRA``, ``NIRSTREAM_SECURITY__PROTOCOL``) and an optional TOML file.

Precedence: explicit arguments > environment > secret files > config file > defaults. A config file with a
key no setting has is refused with the key's name (a typo must not silently fall back to a default).
Secrets (SASL password) come from the environment or from secret files: one file per setting, named like its
environment variable (``NIRSTREAM_SECURITY__SASL_PASSWORD``), in ``$NIRSTREAM_SECRETS_DIR`` (default
``/run/secrets``, where Docker and Kubernetes mount secrets), so they need not be in a config file or the environment.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource
from pydantic_settings.sources import NestedSecretsSettingsSource

from nirstream.core.messages.limits import MAX_MESSAGE_BYTES


@dataclass(frozen=True)
class Durability:
    replication_factor: int
    min_insync_replicas: int
    idempotent: bool

    KAFKA: ClassVar[Durability]
    EMBEDDED: ClassVar[Durability]


Durability.KAFKA = Durability(replication_factor=3, min_insync_replicas=2, idempotent=True)
Durability.EMBEDDED = Durability(replication_factor=1, min_insync_replicas=1, idempotent=False)


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
            for name, path in (("ssl_cafile", self.ssl_cafile), ("ssl_certfile", self.ssl_certfile),
                               ("ssl_keyfile", self.ssl_keyfile)):
                if path is not None and not path.is_file():
                    raise FileNotFoundError(f"security.{name}: {path} is not a file")
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


DEFAULT_SECRETS_DIR = Path("/run/secrets")


def secrets_dir() -> Path:
    """Where secret files are read from: ``$NIRSTREAM_SECRETS_DIR``, else ``/run/secrets``."""
    return Path(os.environ.get("NIRSTREAM_SECRETS_DIR") or DEFAULT_SECRETS_DIR)


class ConfigFileError(ValueError):
    """A config file that does not exist or names settings that do not exist."""


class SharedSettings(BaseSettings):
    """Kafka, topics, registry, message size limit: what the worker, ``ingest``, ``train``, ``models``, ``simulate``,
    ``watch`` and ``demo`` share."""

    model_config = SettingsConfigDict(env_prefix="NIRSTREAM_", env_nested_delimiter="__", extra="forbid")
    config_file: ClassVar[Path | None] = None
    # the shared-settings file a command's --config named (set by the command line for its process): every
    # load() without a file of its own reads it, so settings read deep inside a command agree with its own
    default_config_file: ClassVar[Path | None] = None

    bootstrap_servers: str = Field(default="127.0.0.1:9092", description="Kafka bootstrap servers, comma separated")
    security: KafkaSecurity = KafkaSecurity()
    topics: TopicNames = TopicNames()
    registry: Path = Field(default=Path("models"), description="Model registry directory")
    max_message_bytes: int = Field(default=MAX_MESSAGE_BYTES, ge=1024,
                                   description="Larger spectrum messages are dead-lettered by the worker and rejected "
                                               "by the file bridge")
    user: str | None = Field(default=None, description="Who changes the registry, for its audit trail (a command's --by "
                                                       "wins); default the OS user at this host")
    embedded_broker: bool = Field(
        default=False, description="The bootstrap servers are nirstream's embedded broker (Tansu; demo and tests): one "
                                   "replica, no idempotent producers. Set by `nirstream demo` and the test suite")
    replication_factor: int | None = Field(
        default=None, ge=1, description="Replicas of each topic the worker creates (create-topics.sh reads it too); "
                                        "default 3 on Kafka, 1 on the embedded broker")
    min_insync_replicas: int | None = Field(
        default=None, ge=1, description="min.insync.replicas of each topic created: with acks=all a write needs this "
                                        "many replicas; default 2 on Kafka, 1 on the embedded broker")
    idempotent_producers: bool | None = Field(
        default=None, description="Producers with enable.idempotence (a retried send is not written twice); default "
                                  "on for Kafka, off on the embedded broker (Tansu 0.6.0 fails InitProducerId)")
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
        secrets = NestedSecretsSettingsSource(file_secret_settings, secrets_dir=secrets_dir(), secrets_dir_missing="ok",
                                              secrets_nested_delimiter="__")
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings, secrets]
        if cls.config_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=cls.config_file))
        return tuple(sources)

    @classmethod
    def load(cls, config_file: str | Path | None = None, **overrides: Any):
        """Settings from ``overrides`` (None values ignored), the environment, ``config_file`` (TOML), defaults."""
        config_file = config_file if config_file is not None else SharedSettings.default_config_file
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

    def kafka_producer_options(self) -> dict[str, Any]:
        """Connection options plus what every producer sends with: acks from all in-sync replicas, idempotence
        where the broker supports it."""
        return {**self.kafka_client_options(), "acks": "all", "enable_idempotence": self.durability().idempotent}

    def durability(self) -> Durability:
        """Replication, min.insync.replicas and idempotence: the configured values, else Kafka's or the embedded
        broker's defaults."""
        default = Durability.EMBEDDED if self.embedded_broker else Durability.KAFKA
        return Durability(
            default.replication_factor if self.replication_factor is None else self.replication_factor,
            default.min_insync_replicas if self.min_insync_replicas is None else self.min_insync_replicas,
            default.idempotent if self.idempotent_producers is None else self.idempotent_producers)


def client_options(bootstrap_servers: str | None = None) -> dict[str, Any]:
    """aiokafka options for ``bootstrap_servers`` (or NIRSTREAM_BOOTSTRAP_SERVERS) with the environment's security."""
    return SharedSettings.load(bootstrap_servers=bootstrap_servers).kafka_client_options()
