"""One settings tree: Kafka connection, security, topics and registry read from the same environment and
config files by every command; config files with unknown keys are refused by name."""

import ssl
import subprocess
import sys

import pytest

from nirstream.core.settings import ConfigFileError, SharedSettings, client_options
from nirstream.stream.settings import Settings


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


def test_topics_and_registry_come_from_one_place_for_every_command(monkeypatch, tmp_path):
    from nirstream.trainer.train_settings import TrainSettings

    monkeypatch.setenv("NIRSTREAM_TOPICS__MODELS", "plant7.models")
    monkeypatch.setenv("NIRSTREAM_REGISTRY", str(tmp_path / "registry"))
    assert Settings.load().topics.models == SharedSettings.load().topics.models == "plant7.models"
    assert TrainSettings().models_topic == "plant7.models" and TrainSettings().registry == tmp_path / "registry"
    assert Settings.load().registry == tmp_path / "registry"


def test_a_worker_config_file_with_an_unknown_key_is_refused_by_name(tmp_path):
    config = tmp_path / "worker.toml"
    config.write_text('max_batch_sizee = 64\n[topics]\nspectra = "plant7.spectra"\n')
    with pytest.raises(ConfigFileError, match="unknown setting.*max_batch_sizee"):
        Settings.load(config)
    config.write_text('max_batch_size = 64\n[topics]\nspectra = "plant7.spectra"\n')
    assert Settings.load(config).topics.spectra == "plant7.spectra"


def test_a_train_config_file_with_an_unknown_key_is_refused_by_name(tmp_path):
    config = tmp_path / "train.toml"
    config.write_text('protocol = "tecator"\nepoch = 3\n')
    done = subprocess.run([sys.executable, "-m", "nirstream", "train", "--config", str(config), "--registry", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "unknown setting(s) epoch" in done.stderr
