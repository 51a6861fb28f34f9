"""Kafka connection options: one place, read from the same environment by every client."""

import ssl

from nirstream.core.connection import client_options
from stream.settings import Settings


def test_plaintext_by_default(monkeypatch):
    monkeypatch.delenv("NIRSTREAM_BOOTSTRAP_SERVERS", raising=False)
    assert client_options("broker:9092") == {"bootstrap_servers": "broker:9092", "security_protocol": "PLAINTEXT"}


def test_sasl_ssl_from_the_environment_reaches_trainer_and_worker_alike(monkeypatch):
    monkeypatch.setenv("NIRSTREAM_SECURITY__PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("NIRSTREAM_SECURITY__SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("NIRSTREAM_SECURITY__SASL_USERNAME", "nirstream")
    monkeypatch.setenv("NIRSTREAM_SECURITY__SASL_PASSWORD", "from-the-environment")
    monkeypatch.setenv("NIRSTREAM_BOOTSTRAP_SERVERS", "kafka-1:9093")

    options = client_options()
    assert options["bootstrap_servers"] == "kafka-1:9093"
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "nirstream"
    assert options["sasl_plain_password"] == "from-the-environment"
    assert isinstance(options["ssl_context"], ssl.SSLContext)

    worker = Settings.load().kafka_client_options()
    assert {k: v for k, v in worker.items() if k != "ssl_context"} == {k: v for k, v in options.items() if k != "ssl_context"}
    assert client_options("other:9093")["bootstrap_servers"] == "other:9093"


def test_password_never_shows_in_repr(monkeypatch):
    monkeypatch.setenv("NIRSTREAM_SECURITY__PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("NIRSTREAM_SECURITY__SASL_PASSWORD", "hunter2")
    assert "hunter2" not in repr(Settings.load())
