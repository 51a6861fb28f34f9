"""Kafka security against a real TLS endpoint: stunnel (Debian's stunnel4) terminates TLS in front of the embedded
broker, which advertises stunnel's address, so every connection a client makes (bootstrap and the advertised
one) is TLS. A client that trusts the right CA and names the host the certificate is for reads and writes; one
that trusts another CA, or reaches the broker by a name the certificate does not carry, is refused with nirstream's
own message. One broker and one stunnel for the module; one short exchange per client kind: the file bridge
(`nirstream ingest`), the worker, the OPC UA server's prediction feed, the trainer's topic reader and services."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from nirstream.core.settings import SharedSettings
from nirstream.devtools.embedded_broker import EmbeddedBroker, _listening, free_port
from nirstream.kafka.connection_check import KafkaTlsError, check_kafka_security
from tests.streaming import WorkerProcess, unique_topics

STUNNEL = shutil.which("stunnel4") or shutil.which("stunnel")
pytestmark = pytest.mark.skipif(STUNNEL is None and os.environ.get("CI") != "true",
                                reason="stunnel missing: `make test` installs it (apt-get install stunnel4)")


def _certificate(subject: str, key, issuer: x509.Certificate | None, issuer_key, *, ca: bool,
                 names: list[x509.GeneralName] = ()) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .issuer_name(issuer.subject if issuer else x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(names)), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(path: Path, certificate: x509.Certificate) -> Path:
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return path


def make_pki(folder: Path) -> dict[str, Path]:
    """A CA, a server certificate it signs for the name 'localhost' only (so 127.0.0.1 is a wrong host name), and
    a second CA that signed nothing."""
    ca_key, other_key, server_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    ca = _certificate("nirstream test CA", ca_key, None, ca_key, ca=True)
    other = _certificate("some other CA", other_key, None, other_key, ca=True)
    server = _certificate("localhost", server_key, ca, ca_key, ca=False, names=[x509.DNSName("localhost")])
    key = folder / "server.key"
    key.write_bytes(server_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()))
    assert ipaddress.ip_address("127.0.0.1")  # the address the certificate does not name
    return {"ca": _pem(folder / "ca.pem", ca), "other_ca": _pem(folder / "other-ca.pem", other),
            "cert": _pem(folder / "server.pem", server), "key": key}


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory):
    """(bootstrap 'localhost:PORT' through stunnel, the PKI files)."""
    if STUNNEL is None:
        pytest.fail("stunnel missing and CI=true: `apt-get install stunnel4` (make test does it as root)")
    folder = tmp_path_factory.mktemp("tls")
    pki = make_pki(folder)
    tls_port, broker_port = free_port(), free_port()
    config = folder / "stunnel.conf"
    config.write_text(f"foreground = yes\npid =\n[kafka]\naccept = 127.0.0.1:{tls_port}\n"
                      f"connect = 127.0.0.1:{broker_port}\ncert = {pki['cert']}\nkey = {pki['key']}\n")
    # clients are told (metadata) to connect to stunnel's address, not the broker's plaintext port
    with EmbeddedBroker.start(broker_port, advertised=f"localhost:{tls_port}"):
        stunnel = subprocess.Popen([STUNNEL, str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 15
            while not _listening(tls_port):
                assert stunnel.poll() is None and time.monotonic() < deadline, "stunnel did not start"
                time.sleep(0.05)  # polling the port while stunnel opens it
            yield f"localhost:{tls_port}", pki
        finally:
            stunnel.terminate()
            stunnel.wait(10)


def tls_env(bootstrap: str, cafile: Path) -> dict[str, str]:
    return {"NIRSTREAM_BOOTSTRAP_SERVERS": bootstrap, "NIRSTREAM_SECURITY__PROTOCOL": "SSL",
            "NIRSTREAM_SECURITY__SSL_CAFILE": str(cafile)}


def tls_settings(bootstrap: str, cafile: Path) -> SharedSettings:
    return SharedSettings(bootstrap_servers=bootstrap, security={"protocol": "SSL", "ssl_cafile": cafile})


def test_the_right_ca_and_host_name_pass_the_check_a_wrong_ca_or_host_name_is_refused_by_name(tls_broker):
    bootstrap, pki = tls_broker
    port = bootstrap.rsplit(":", 1)[1]
    check_kafka_security(tls_settings(bootstrap, pki["ca"]))
    with pytest.raises(KafkaTlsError, match=rf"certificate verify failed.*CA file {pki['other_ca']}"):
        check_kafka_security(tls_settings(bootstrap, pki["other_ca"]))
    with pytest.raises(KafkaTlsError, match=r"IP address mismatch.*host name checked: 127\.0\.0\.1"):
        check_kafka_security(tls_settings(f"127.0.0.1:{port}", pki["ca"]))


def test_aiokafka_itself_refuses_what_the_check_refuses(tls_broker):
    """The check only words the refusal: without it the clients' own TLS refuses the same connections."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import KafkaConnectionError

    bootstrap, pki = tls_broker
    port = bootstrap.rsplit(":", 1)[1]

    async def send(settings: SharedSettings) -> None:
        producer = AIOKafkaProducer(**settings.kafka_producer_options(), request_timeout_ms=5000)
        try:
            await producer.start()
            await producer.send_and_wait("tls-probe", b"x")
        finally:
            await producer.stop()

    asyncio.run(send(tls_settings(bootstrap, pki["ca"])))
    for refused in (tls_settings(bootstrap, pki["other_ca"]), tls_settings(f"127.0.0.1:{port}", pki["ca"])):
        with pytest.raises(KafkaConnectionError):
            asyncio.run(send(refused))


def _nirstream(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nirstream", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **env})


def test_file_bridge_worker_and_opcua_feed_over_tls(tls_broker, registry, tecator, tmp_path):
    """A spectrum file -> ingest (security from its --config file) -> worker (from the environment) -> the OPC UA
    server's prediction feed: every hop over TLS."""
    from nirstream.core.datasets.spectrum_file import write_spectrum_csv
    from nirstream.stream.prediction_feed import PredictionFeed

    bootstrap, pki = tls_broker
    topics = unique_topics()
    worker = WorkerProcess(bootstrap, registry.base, topics, tmp_path / "worker.log",
                           extra_env=tls_env(bootstrap, pki["ca"])).start()
    try:
        worker.wait_ready()
        settings = tls_settings(bootstrap, pki["ca"]).model_copy(update={"topics": topics})
        received = []

        async def feed_one_prediction() -> None:
            feed, stop = PredictionFeed(settings), asyncio.Event()

            async def handle(prediction):
                received.append(prediction)
                stop.set()

            reading = asyncio.create_task(feed.run(handle, stop))
            await asyncio.wait_for(feed.ready.wait(), 60)
            inbox = tmp_path / "inbox"
            inbox.mkdir()
            write_spectrum_csv(inbox / "s1.csv", tecator.wavelengths, tecator.X[0], sample_id="TLS-1")
            config = tmp_path / "kafka.toml"
            config.write_text(f'bootstrap_servers = "{bootstrap}"\n[security]\nprotocol = "SSL"\n'
                              f'ssl_cafile = "{pki["ca"]}"\n')
            bridge = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "nirstream", "ingest", "--config", str(config), "--watch", str(inbox),
                "--analyzer", "tls-line", "--format", "csv", "--once", "--settle-seconds", "0", "--poll-seconds", "0.2",
                "--topic", topics.spectra, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
                env={k: v for k, v in os.environ.items() if not k.startswith("NIRSTREAM_SECURITY")})
            output = (await asyncio.wait_for(bridge.communicate(), 120))[0].decode()
            assert bridge.returncode == 0 and "published 1 file(s)" in output, output
            await asyncio.wait_for(reading, 60)

        asyncio.run(feed_one_prediction())
        assert [p.sample_id for p in received] == ["TLS-1"]
    finally:
        worker.stop()


def test_every_kafka_command_refuses_a_wrong_ca_with_a_message_naming_it(tls_broker, tmp_path):
    bootstrap, pki = tls_broker
    wrong = tls_env(bootstrap, pki["other_ca"])
    config = tmp_path / "kafka.toml"
    config.write_text(f'[security]\nprotocol = "SSL"\nssl_cafile = "{pki["other_ca"]}"\n')
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    commands = {
        "worker": (["worker"], wrong),
        "opcua": (["opcua", "--endpoint", f"opc.tcp://127.0.0.1:{free_port()}/nirstream/"], wrong),
        "trainer service": (["trainer", "--store", str(tmp_path / "pairs.sqlite")], wrong),
        "ingest": (["ingest", "--config", str(config), "--bootstrap-servers", bootstrap, "--watch", str(inbox),
                    "--analyzer", "a1", "--format", "csv", "--once"], {}),
        "train --from-topic": (["train", "--protocol", "tecator", "--from-topic", "nirstream.labelled", "--kafka-config",
                                str(config), "--bootstrap-servers", bootstrap, "--report-dir", str(tmp_path)], {}),
    }
    for name, (args, env) in commands.items():
        result = _nirstream(*args, env=env)
        assert result.returncode == 2, f"{name}: {result.returncode}\n{result.stderr[-2000:]}"
        assert f"certificate verify failed; trusted: CA file {pki['other_ca']}" in result.stderr, f"{name}: {result.stderr[-2000:]}"
        assert "Traceback" not in result.stderr, name


def test_the_trainer_service_reads_over_tls(tls_broker, registry, tmp_path):
    from nirstream.devtools.trainer_process import TrainerProcess

    bootstrap, pki = tls_broker
    trainer = TrainerProcess(bootstrap, registry.base, unique_topics(), tmp_path / "trainer.log",
                             extra_env=tls_env(bootstrap, pki["ca"]), store=tmp_path / "pairs.sqlite",
                             workdir=tmp_path / "work").start()
    try:
        trainer.wait_ready()
    finally:
        trainer.stop()


def test_the_trainers_topic_reader_reads_over_tls(tls_broker):
    """What `nirstream train --from-topic` reads with (read_to_end): a record written over TLS comes back."""
    from aiokafka import AIOKafkaProducer

    from nirstream.kafka.topic_reader import read_to_end

    bootstrap, pki = tls_broker
    settings, topic = tls_settings(bootstrap, pki["ca"]), unique_topics().labelled

    async def round_trip() -> list[bytes]:
        producer = AIOKafkaProducer(**settings.kafka_producer_options())
        await producer.start()
        try:
            await producer.send_and_wait(topic, b"over TLS")
        finally:
            await producer.stop()
        return [m.value async for m in read_to_end(settings.kafka_client_options(), topic, timeout=30)]

    assert asyncio.run(round_trip()) == [b"over TLS"]
