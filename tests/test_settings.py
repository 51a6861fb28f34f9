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


def test_faust_gets_the_same_sasl_credentials_and_ssl_context_as_aiokafka(monkeypatch, tmp_path):
    import faust

    from nirstream.stream.app import faust_credentials
    from tests.test_kafka_tls import make_pki

    pki = make_pki(tmp_path)
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "NIRSTREAM_SECURITY__SASL_PASSWORD").write_text("from-a-file\n")
    monkeypatch.setenv("NIRSTREAM_SECRETS_DIR", str(tmp_path / "secrets"))
    monkeypatch.setenv("NIRSTREAM_SECURITY__PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("NIRSTREAM_SECURITY__SASL_MECHANISM", "SCRAM-SHA-256")
    monkeypatch.setenv("NIRSTREAM_SECURITY__SASL_USERNAME", "nirstream")
    monkeypatch.setenv("NIRSTREAM_SECURITY__SSL_CAFILE", str(pki["ca"]))
    settings = Settings.load()
    options = settings.kafka_client_options()
    assert (options["sasl_mechanism"], options["sasl_plain_username"], options["sasl_plain_password"]) == (
        "SCRAM-SHA-256", "nirstream", "from-a-file")  # the password from the secret file, newline stripped
    credentials = faust_credentials(settings)
    assert isinstance(credentials, faust.SASLCredentials)
    assert (credentials.mechanism.value, credentials.username, credentials.password) == ("SCRAM-SHA-256", "nirstream",
                                                                                         "from-a-file")
    assert credentials.protocol.value == "SASL_SSL" and credentials.ssl_context.verify_mode == ssl.CERT_REQUIRED
    monkeypatch.setenv("NIRSTREAM_SECURITY__PROTOCOL", "SSL")
    ssl_only = faust_credentials(Settings.load())
    assert isinstance(ssl_only, faust.SSLCredentials) and ssl_only.context.check_hostname
    monkeypatch.setenv("NIRSTREAM_SECURITY__PROTOCOL", "PLAINTEXT")
    assert faust_credentials(Settings.load()) is None


def test_the_environment_wins_over_a_secret_file(monkeypatch, tmp_path):
    (tmp_path / "NIRSTREAM_SECURITY__SASL_PASSWORD").write_text("from-a-file")
    monkeypatch.setenv("NIRSTREAM_SECRETS_DIR", str(tmp_path))
    monkeypatch.setenv("NIRSTREAM_SECURITY__SASL_PASSWORD", "from-the-environment")
    assert SharedSettings.load().security.sasl_password.get_secret_value() == "from-the-environment"


def test_plain_over_plaintext_warns_once_and_scram_or_tls_does_not(caplog):
    import nirstream.kafka.connection_check as connection_check

    def settings(protocol: str, mechanism: str) -> SharedSettings:
        return SharedSettings(security={"protocol": protocol, "sasl_mechanism": mechanism, "sasl_username": "u",
                                        "sasl_password": "p"})

    connection_check._warned_plain_in_clear = False
    with caplog.at_level("WARNING", logger="nirstream.kafka.connection_check"):
        connection_check.check_kafka_security(settings("SASL_PLAINTEXT", "SCRAM-SHA-512"))
        assert not caplog.records
        connection_check.check_kafka_security(settings("SASL_PLAINTEXT", "PLAIN"))
        connection_check.check_kafka_security(settings("SASL_PLAINTEXT", "PLAIN"))
    assert [r.getMessage() for r in caplog.records] == [
        "SASL PLAIN over a plaintext connection: the Kafka password for 'u' crosses the network unencrypted; use "
        "protocol SASL_SSL (or a SCRAM mechanism)"]


def test_a_missing_ca_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"security.ssl_cafile: {tmp_path / 'nope.pem'} is not a file"):
        SharedSettings(security={"protocol": "SSL", "ssl_cafile": tmp_path / "nope.pem"}).kafka_client_options()


def test_a_commands_settings_file_reaches_settings_read_deep_inside_it(tmp_path):
    """`--config` of ingest/simulate/watch/models/transfer (train: --kafka-config) is read by every later load()."""
    from nirstream.cli import build_parser

    config = tmp_path / "kafka.toml"
    config.write_text('[topics]\nmodels = "plant9.models"\n')
    args = build_parser().parse_args(["models", "rollback", "--config", str(config)])
    try:
        SharedSettings.default_config_file = args.shared_config
        assert SharedSettings.load().topics.models == "plant9.models"
    finally:
        SharedSettings.default_config_file = None
