"""How every nirstream client connects to Kafka: bootstrap servers plus optional SASL/TLS.

The worker, the simulator, the watch view and the trainer (announcing a promotion, reading
labelled spectra) all build their aiokafka options here, from the same ``NIRSTREAM_*``
environment, so a secured cluster needs its credentials configured once.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class KafkaSecurity(BaseModel):
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


class KafkaConnection(BaseSettings):
    """Only the connection part of the worker's settings (same environment names)."""

    model_config = SettingsConfigDict(env_prefix="NIRSTREAM_", env_nested_delimiter="__", extra="ignore")

    bootstrap_servers: str = Field(default="127.0.0.1:9092", description="Kafka bootstrap servers, comma separated")
    security: KafkaSecurity = KafkaSecurity()

    def client_options(self) -> dict[str, Any]:
        return self.security.client_options(self.bootstrap_servers)


def client_options(bootstrap_servers: str | None = None) -> dict[str, Any]:
    """aiokafka options for ``bootstrap_servers`` (or NIRSTREAM_BOOTSTRAP_SERVERS) with the environment's security."""
    overrides = {"bootstrap_servers": bootstrap_servers} if bootstrap_servers else {}
    return KafkaConnection(**overrides).client_options()
