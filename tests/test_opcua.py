"""``nirstream opcua`` against the real parts: the embedded broker, the asyncua server fed by the predictions topic,
and a real asyncua client that subscribes to a value (plain, and over Basic256Sha256 SignAndEncrypt)."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from asyncua import Client, ua
from asyncua.crypto import cert_gen
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID
from prometheus_client.parser import text_string_to_metric_families

from nirstream.devtools.embedded_broker import free_port
from nirstream.core.messages.prediction import OutlierStatistics, PredictionInterval, PredictionMessage
from nirstream.stream.opcua_app import OpcUaService
from nirstream.stream.opcua_server import FUTURE_TOLERANCE, MAX_IDS_AT_SOURCE_TIME, ProcessValueServer, node_id_string
from nirstream.stream.settings import OpcUaOptions, OpcUaSettings
from tests.helpers import create_topic
from tests.streaming import produce

NAMESPACE = "urn:nirstream"
TIMEOUT = 90.0  # generous: the machine is slow and shared


def prediction(analyzer: str, sequence: int, values: dict[str, float], flag: str = "ok",
               intervals: bool = True) -> PredictionMessage:
    """A prediction as the worker publishes it (the schema's own model), for a spectrum measured just now."""
    limits = {"t2_limit_95": 11.2, "t2_limit_99": 16.3, "q_limit_95": 0.02, "q_limit_99": 0.03}
    return PredictionMessage(
        analyzer_id=analyzer, sequence=sequence, message_id=f"{analyzer}:{sequence}", model_version="7",
        spectrum_timestamp=datetime.now(UTC).replace(microsecond=sequence * 1000 % 1_000_000),
        predictions=values, units={target: "%" for target in values},
        intervals={t: PredictionInterval(low=v - 1.5, high=v + 2.0, coverage=0.9) for t, v in values.items()} if intervals else None,
        outlier=OutlierStatistics(hotelling_t2=3.0 if flag == "ok" else 30.0, q_residual=0.01, flag=flag, **limits),
    )


def encoded(*messages: PredictionMessage) -> list[tuple[bytes, bytes]]:
    return [(m.analyzer_id.encode(), m.model_dump_json().encode()) for m in messages]


async def until(condition, what: str, timeout: float = TIMEOUT):
    """Poll an (async) condition until it returns something other than None or False (an index 0 counts); fail
    naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        result = await result if asyncio.iscoroutine(result) else result
        if result is not None and result is not False:
            return result
        await asyncio.sleep(0.05)  # polling interval, not a synchronisation
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


class Recorder:
    """asyncua subscription handler: every DataValue the server notifies."""

    def __init__(self):
        self.values: list[ua.DataValue] = []

    def datachange_notification(self, node, val, data) -> None:
        self.values.append(data.monitored_item.Value)

    def find(self, value: float, severity: str, after: int = 0) -> int | None:
        """Index of the first notification from ``after`` on with ``value`` and status severity."""
        for i, seen in enumerate(self.values[after:], start=after):
            if seen.Value.Value == value and _severity(seen.StatusCode) == severity:
                return i
        return None


def _severity(status: ua.StatusCode) -> str:
    return "good" if status.is_good() else "uncertain" if status.is_uncertain() else "bad"


class RunningService:
    """The OPC UA service as an asyncio task of the test, ready once its feed knows where the topic ends."""

    def __init__(self, settings: OpcUaSettings):
        self.service = OpcUaService(settings)
        self.stop = asyncio.Event()
        self.task: asyncio.Task | None = None

    async def __aenter__(self) -> OpcUaService:
        self.task = asyncio.create_task(self.service.run(self.stop))
        await until(lambda: self.service.ready.is_set() or self.task.done(), "the OPC UA service to be ready")
        if self.task.done():
            self.task.result()  # raises its error
        return self.service

    async def __aexit__(self, *exc) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, TIMEOUT)


def http_get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    """The service's /metrics samples by (name, sorted labels)."""
    body = http_get(port, "/metrics")[1].decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body) for s in family.samples}


def settings_for(broker, topics, **options) -> OpcUaSettings:
    """Security mode None (the tests' own, with allow_insecure) unless ``options`` say otherwise."""
    endpoint = f"opc.tcp://127.0.0.1:{free_port()}/nirstream/"
    options = {"allow_insecure": options.get("security_mode", "None") == "None", "web_port": free_port(), **options}
    return OpcUaSettings(bootstrap_servers=broker.bootstrap_servers, topics=topics,
                         opcua=OpcUaOptions(endpoint=endpoint, **options))


def test_client_receives_values_with_source_time_and_status_good_uncertain_then_bad_when_stale(broker, topics, tecator):
    """Staleness is driven here by calling the check with a later clock (the service's own check, with an hour's
    staleness time, never fires), so nothing below can turn stale early on a slow machine."""
    fat, water = (float(tecator.target(t)[0]) for t in ("fat", "water"))
    settings = settings_for(broker, topics, stale_seconds=3600)

    async def scenario():
        await create_topic(broker.bootstrap_servers, topics.predictions)
        async with RunningService(settings) as service:
            first = prediction("line-1", 1, {"fat": fat, "water": water})
            not_a_number = first.model_dump_json().replace(f'"fat":{fat}', '"fat":NaN', 1).encode()  # the schema admits NaN
            assert b"NaN" in not_a_number
            bad_records = [(b"line-1", b"\x00garbage"), (b"line-1", b'{"analyzer_id": "line-1"}'), (b"line-1", not_a_number)]
            await produce(broker.bootstrap_servers, topics.predictions, [*bad_records, *encoded(first)])
            async with Client(settings.opcua.endpoint, timeout=30) as client:
                ns = await client.get_namespace_index(NAMESPACE)
                value = client.get_node(ua.NodeId(node_id_string("line-1", "Channel1", "fat", "Value"), ns))

                async def node_exists():
                    try:
                        return (await value.read_data_value(raise_on_bad_status=False)).Value.Value == fat
                    except ua.UaStatusCodeError:
                        return False

                await until(node_exists, "the fat output's node")
                # the ADI-like browse path leads to the same bookmarkable NodeId
                browsed = await client.nodes.objects.get_child([f"{ns}:{name}" for name in
                                                                ("nirstream", "line-1", "Channel1", "fat", "Value")])
                assert browsed.nodeid == value.nodeid
                with pytest.raises(ua.UaStatusCodeError):
                    await value.write_value(0.0)  # read-only for clients
                assert service.feed.bad_messages == len(bad_records)  # skipped and counted; the service runs on

                recorder = Recorder()
                subscription = await client.create_subscription(50, recorder)
                await subscription.subscribe_data_change(value, queuesize=100)
                await until(lambda: len(recorder.values) > 0, "the subscription's first notification")

                good = prediction("line-1", 2, {"fat": fat + 1.25, "water": water})
                await produce(broker.bootstrap_servers, topics.predictions, encoded(good))
                at_good = await until(lambda: recorder.find(fat + 1.25, "good"), "the Good value")
                assert utc(recorder.values[at_good].SourceTimestamp) == good.spectrum_timestamp
                assert recorder.values[at_good].StatusCode.value == ua.StatusCodes.Good

                flagged = prediction("line-1", 3, {"fat": fat + 2.5, "water": water}, flag="outlier")
                await produce(broker.bootstrap_servers, topics.predictions, encoded(flagged))
                at_flagged = await until(lambda: recorder.find(fat + 2.5, "uncertain", at_good), "the Uncertain value")
                assert utc(recorder.values[at_flagged].SourceTimestamp) == flagged.spectrum_timestamp

                output = [client.get_node(ua.NodeId(node_id_string("line-1", "Channel1", "fat", name), ns))
                          for name in ("IntervalLow", "IntervalHigh", "ModelVersion", "Flag")]
                low, high, version, flag = [await node.read_data_value(raise_on_bad_status=False) for node in output]
                interval = flagged.intervals["fat"]
                assert (low.Value.Value, high.Value.Value) == (interval.low, interval.high)
                assert low.StatusCode.is_uncertain() and high.StatusCode.is_uncertain() and version.StatusCode.is_good()
                assert (version.Value.Value, flag.Value.Value) == ("7", "outlier")
                water_value = client.get_node(ua.NodeId(node_id_string("line-1", "Channel1", "water", "Value"), ns))
                assert (await water_value.read_data_value(raise_on_bad_status=False)).Value.Value == water

                # no further prediction for longer than the staleness time: the value turns Bad (null, as OPC UA
                # requires of Bad values), source time kept
                assert not service.server.outputs[("line-1", "fat")].stale
                assert await service.server.mark_stale(now=time.monotonic() + settings.opcua.stale_seconds) == 2
                at_stale = await until(lambda: recorder.find(None, "bad", at_flagged), "the stale value to turn Bad")
                stale = recorder.values[at_stale]
                assert stale.StatusCode.value == ua.StatusCodes.BadNoCommunication
                assert utc(stale.SourceTimestamp) == flagged.spectrum_timestamp
                assert service.server.outputs[("line-1", "fat")].stale

                # a worker's replay of an already published prediction changes nothing
                assert await service.server.publish(good) == 0

            # what Prometheus scrapes: the counts above, and /ready with numbers, not paths
            metrics = await asyncio.to_thread(scrape, settings.opcua.web_port)
            assert metrics[("nirstream_opcua_bad_messages_total", ())] == len(bad_records)
            assert metrics[("nirstream_opcua_updates_total", ())] == 6  # fat and water of three predictions
            assert metrics[("nirstream_opcua_skipped_values_total", (("reason", "older"),))] == 2  # the replay's two
            assert metrics[("nirstream_opcua_stale_outputs", ())] == 2 and metrics[("nirstream_opcua_ready", ())] == 1
            assert metrics[("nirstream_opcua_last_prediction_timestamp_seconds", ())] >= first.spectrum_timestamp.timestamp()
            status, ready = await asyncio.to_thread(http_get, settings.opcua.web_port, "/ready")
            assert status == 200 and json.loads(ready) == {"ready": True, "outputs": 2, "stale_outputs": 2}

    asyncio.run(scenario())


def test_the_services_own_check_turns_a_value_bad_after_the_staleness_time(broker, topics, tecator):
    """The periodic check of a running service, with a short staleness time: only the end state is asserted (the
    value may already be Bad when the client first reads it on a slow machine)."""
    settings = settings_for(broker, topics, stale_seconds=0.5)
    sent = prediction("line-5", 1, {"fat": float(tecator.target("fat")[2])})

    async def scenario():
        await create_topic(broker.bootstrap_servers, topics.predictions)
        async with RunningService(settings) as service:
            await produce(broker.bootstrap_servers, topics.predictions, encoded(sent))
            async with Client(settings.opcua.endpoint, timeout=30) as client:
                ns = await client.get_namespace_index(NAMESPACE)
                value = client.get_node(ua.NodeId(node_id_string("line-5", "Channel1", "fat", "Value"), ns))

                async def stale_value():
                    try:
                        data = await value.read_data_value(raise_on_bad_status=False)
                    except ua.UaStatusCodeError:  # the node is not there yet
                        return None
                    return data if data.StatusCode.value == ua.StatusCodes.BadNoCommunication else None

                stale = await until(stale_value, "the service to turn the value Bad")
                assert stale.Value.Value is None and utc(stale.SourceTimestamp) == sent.spectrum_timestamp
                assert service.server.outputs[("line-5", "fat")].stale

    asyncio.run(scenario())


def _certificate(folder: Path, name: str, uri: str, usage) -> tuple[Path, Path]:
    key = cert_gen.generate_private_key()
    names = [x509.UniformResourceIdentifier(uri), x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    certificate = cert_gen.generate_self_signed_app_certificate(key, name, {}, names, [usage], days=2)
    cert_path, key_path = folder / f"{name}.der", folder / f"{name}.pem"
    cert_path.write_bytes(certificate.public_bytes(Encoding.DER))
    key_path.write_bytes(cert_gen.dump_private_key_as_pem(key))
    return cert_path, key_path


def test_sign_and_encrypt_with_a_self_signed_certificate_and_trusted_clients_only(broker, topics, tecator, tmp_path):
    server_cert, server_key = _certificate(tmp_path, "server", "urn:nirstream:test-server", ExtendedKeyUsageOID.SERVER_AUTH)
    trusted = tmp_path / "trusted"
    trusted.mkdir()
    client_cert, client_key = _certificate(trusted, "client", "urn:nirstream:test-client", ExtendedKeyUsageOID.CLIENT_AUTH)
    stranger_cert, stranger_key = _certificate(tmp_path, "stranger", "urn:nirstream:test-client", ExtendedKeyUsageOID.CLIENT_AUTH)
    client_key.rename(tmp_path / client_key.name)  # only certificates in the trust folder
    client_key = tmp_path / client_key.name
    fat = float(tecator.target("fat")[1])
    settings = settings_for(broker, topics, security_mode="SignAndEncrypt", certificate=server_cert,
                            private_key=server_key, trusted_clients=trusted)

    async def secure_client(cert: Path, key: Path) -> Client:
        client = Client(settings.opcua.endpoint, timeout=30)
        client.application_uri = "urn:nirstream:test-client"
        await client.set_security(SecurityPolicyBasic256Sha256, certificate=str(cert), private_key=str(key),
                                  server_certificate=str(server_cert), mode=ua.MessageSecurityMode.SignAndEncrypt)
        return client

    async def scenario():
        await create_topic(broker.bootstrap_servers, topics.predictions)
        async with RunningService(settings):
            endpoints = await Client(settings.opcua.endpoint, timeout=30).connect_and_get_server_endpoints()
            assert {(e.SecurityPolicyUri, e.SecurityMode) for e in endpoints} == {
                (SecurityPolicyBasic256Sha256.URI, ua.MessageSecurityMode.SignAndEncrypt)}  # no unencrypted endpoint
            assert endpoints[0].Server.ApplicationUri == "urn:nirstream:test-server"  # from the certificate

            await produce(broker.bootstrap_servers, topics.predictions, encoded(prediction("line-2", 1, {"fat": fat})))
            client = await secure_client(client_cert, client_key)
            async with client:
                ns = await client.get_namespace_index(NAMESPACE)
                value = client.get_node(ua.NodeId(node_id_string("line-2", "Channel1", "fat", "Value"), ns))

                async def read():
                    try:
                        return await value.read_data_value(raise_on_bad_status=False)
                    except ua.UaStatusCodeError:
                        return None

                data = await until(read, "the value over SignAndEncrypt")
                assert data.Value.Value == fat and data.StatusCode.is_good()

            stranger = await secure_client(stranger_cert, stranger_key)
            with pytest.raises(ua.uaerrors.BadCertificateUntrusted):
                await stranger.connect()  # its certificate is not in the trust folder
            await stranger.disconnect()

    asyncio.run(scenario())


def test_security_settings_are_checked_before_serving(tmp_path):
    async def start(**options):
        await ProcessValueServer(OpcUaOptions(endpoint=f"opc.tcp://127.0.0.1:{free_port()}/", **options)).start()

    # doors closed by default: None (the default mode) only with allow_insecure; SignAndEncrypt only with a trust list
    with pytest.raises(ValueError, match="pass --allow-insecure"):
        asyncio.run(start())
    server_cert, server_key = _certificate(tmp_path, "server", "urn:nirstream:test-server", ExtendedKeyUsageOID.SERVER_AUTH)
    with pytest.raises(ValueError, match="SignAndEncrypt needs --trusted-clients"):
        asyncio.run(start(security_mode="SignAndEncrypt", certificate=server_cert, private_key=server_key))
    with pytest.raises(FileNotFoundError, match="trusted client certificate folder .* does not exist"):
        asyncio.run(start(security_mode="SignAndEncrypt", certificate=server_cert, private_key=server_key,
                          trusted_clients=tmp_path / "no-such-folder"))
    with pytest.raises(ValueError, match="needs --certificate and --private-key"):
        asyncio.run(start(security_mode="SignAndEncrypt"))
    with pytest.raises(ValueError, match="need --security-mode SignAndEncrypt"):
        asyncio.run(start(certificate=tmp_path / "server.der"))
    not_a_certificate = tmp_path / "server.der"
    not_a_certificate.write_bytes(b"not a certificate")
    (tmp_path / "key.pem").write_bytes(b"not a key")
    with pytest.raises(ValueError, match="is not a PEM or DER certificate"):
        asyncio.run(start(security_mode="SignAndEncrypt", certificate=not_a_certificate, private_key=tmp_path / "key.pem",
                          trusted_clients=tmp_path))


def test_cli_reports_missing_certificate_files_clearly(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "nirstream", "opcua", "--security-mode", "SignAndEncrypt",
         "--certificate", str(tmp_path / "missing.der"), "--private-key", str(tmp_path / "missing.pem"),
         "--trusted-clients", str(tmp_path)],
        capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parent.parent)
    assert result.returncode == 2, result.stderr
    assert f"nirstream: error: OPC UA certificate file {tmp_path / 'missing.der'} does not exist" in result.stderr
    assert "Traceback" not in result.stderr
    # the command's default, security mode None, refuses to serve without --allow-insecure
    result = subprocess.run([sys.executable, "-m", "nirstream", "opcua", "--endpoint", f"opc.tcp://127.0.0.1:{free_port()}/"],
                            capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parent.parent)
    assert result.returncode == 2 and "pass --allow-insecure" in result.stderr and "Traceback" not in result.stderr


def test_node_ids_are_stable_and_distinct_for_any_name():
    assert node_id_string("line-1", "Channel1", "fat", "Value") == "line-1/Channel1/fat/Value"
    names = ["fat %", "fat_%", "fat/water", "fat%2Fwater", "Ω", "a b"]
    ids = {node_id_string("line-1", "Channel1", name) for name in names}
    assert len(ids) == len(names) and all(i.count("/") == 2 for i in ids)


def test_address_space_is_bounded_and_takes_any_target_name():
    async def scenario():
        server = ProcessValueServer(OpcUaOptions(endpoint=f"opc.tcp://127.0.0.1:{free_port()}/nirstream/", allow_insecure=True, max_outputs=2))
        await server.start()
        try:
            names = {"fat %": 12.5, "fat/water": 0.4, "protein": 17.0}
            assert await server.publish(prediction("line-3", 1, names)) == 2
            assert set(server.outputs) == {("line-3", "fat %"), ("line-3", "fat/water")} and server.skipped_outputs == 1
            ns = server.namespace
            for name, expected in list(names.items())[:2]:
                path = [f"{ns}:{part}" for part in ("nirstream", "line-3", "Channel1", name, "Value")]
                node = await server.server.nodes.objects.get_child(path)
                assert node.nodeid.Identifier == node_id_string("line-3", "Channel1", name, "Value")
                assert await node.read_value() == expected
        finally:
            await server.stop()

    asyncio.run(scenario())


def test_an_output_only_moves_forward_in_source_time_whatever_arrives_late():
    """A worker's replay can come long after the original (session timeout, restore), with any number of predictions
    between: an older value, or the same one again, is skipped per output and never becomes a step back; a newer one,
    even after the output went stale, is written."""
    start = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)

    def at(sequence: int, seconds: float, values: dict[str, float]) -> PredictionMessage:
        return prediction("line-4", sequence, values).model_copy(update={"spectrum_timestamp": start + timedelta(seconds=seconds)})

    async def scenario():
        server = ProcessValueServer(OpcUaOptions(endpoint=f"opc.tcp://127.0.0.1:{free_port()}/nirstream/", allow_insecure=True))
        await server.start()
        try:
            async def fat() -> ua.DataValue:
                return await server.server.get_node(server.outputs[("line-4", "fat")].value).read_data_value(
                    raise_on_bad_status=False)

            first, second = at(1, 10, {"fat": 11.0}), at(2, 20, {"fat": 12.0})
            assert await server.publish(first) == 1 and await server.publish(second) == 1
            assert await server.publish(first) == 0  # replayed after its id would have left any window of recent ids
            assert await server.publish(at(9, 15, {"fat": 99.0})) == 0  # never seen, but measured before the current one
            assert await server.publish(second) == 0  # the current one again
            current = await fat()
            assert current.Value.Value == 12.0 and utc(current.SourceTimestamp) == second.spectrum_timestamp
            assert server.skipped_older == 3

            # per output: the late prediction's new target is written, its old one is not
            assert await server.publish(at(3, 18, {"fat": 98.0, "protein": 17.5})) == 1
            assert set(server.outputs) == {("line-4", "fat"), ("line-4", "protein")} and (await fat()).Value.Value == 12.0
            twin = at(4, 20, {"fat": 12.5})  # another spectrum measured at the same instant: a new value
            assert await server.publish(twin) == 1 and (await fat()).Value.Value == 12.5
            assert await server.publish(second) == 0 and await server.publish(twin) == 0

            assert await server.mark_stale(now=time.monotonic() + 2 * server.options.stale_seconds) == 2
            assert await server.publish(twin) == 0 and (await fat()).StatusCode.value == ua.StatusCodes.BadNoCommunication
            newer = at(5, 30, {"fat": 13.0})
            assert await server.publish(newer) == 1
            current = await fat()
            assert (current.Value.Value, current.StatusCode.value) == (13.0, ua.StatusCodes.Good)
            assert utc(current.SourceTimestamp) == newer.spectrum_timestamp
        finally:
            await server.stop()

    asyncio.run(scenario())


def test_a_value_dated_far_ahead_is_skipped_and_does_not_freeze_its_output():
    """An analyzer clock set to 2099 once must not block every later value: values dated beyond FUTURE_TOLERANCE
    ahead of the server's clock are skipped and counted; values within it are written."""
    now = datetime.now(UTC)

    def at(sequence: int, moment: datetime, fat: float) -> PredictionMessage:
        return prediction("line-5", sequence, {"fat": fat}).model_copy(update={"spectrum_timestamp": moment})

    async def scenario():
        server = ProcessValueServer(OpcUaOptions(endpoint=f"opc.tcp://127.0.0.1:{free_port()}/nirstream/", allow_insecure=True))
        await server.start()
        try:
            assert await server.publish(at(1, now, 11.0)) == 1
            assert await server.publish(at(2, datetime(2099, 1, 1, tzinfo=UTC), 99.0)) == 0
            assert await server.publish(at(3, now + FUTURE_TOLERANCE + timedelta(minutes=1), 98.0)) == 0
            assert server.skipped_future == 2 and server.skipped_older == 0
            within = at(4, now + timedelta(minutes=1), 12.0)  # ordinary clock drift: written
            assert await server.publish(within) == 1
            current = await server.server.get_node(server.outputs[("line-5", "fat")].value).read_data_value()
            assert (current.Value.Value, current.StatusCode.value) == (12.0, ua.StatusCodes.Good)
            assert utc(current.SourceTimestamp) == within.spectrum_timestamp
            assert await server.publish(at(5, now + timedelta(minutes=2), 13.0)) == 1  # later values keep coming
        finally:
            await server.stop()

    asyncio.run(scenario())


def test_the_ids_kept_for_one_source_time_are_bounded():
    """A producer sending many spectra with one fixed timestamp and fresh ids must not grow memory without bound:
    the newest MAX_IDS_AT_SOURCE_TIME ids are kept, so a recent replay is still skipped."""
    moment = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
    count = MAX_IDS_AT_SOURCE_TIME + 10

    async def scenario():
        server = ProcessValueServer(OpcUaOptions(endpoint=f"opc.tcp://127.0.0.1:{free_port()}/nirstream/", allow_insecure=True))
        await server.start()
        try:
            messages = [prediction("line-6", i, {"fat": float(i)}).model_copy(update={"spectrum_timestamp": moment})
                        for i in range(count)]
            for message in messages:
                assert await server.publish(message) == 1
            ids = server.outputs[("line-6", "fat")].ids_at_source_time
            assert len(ids) == MAX_IDS_AT_SOURCE_TIME and messages[0].message_id not in ids
            assert messages[-1].message_id in ids and messages[count - MAX_IDS_AT_SOURCE_TIME].message_id in ids
            assert await server.publish(messages[-1]) == 0 and server.skipped_older == 1  # a recent replay: skipped
        finally:
            await server.stop()

    asyncio.run(scenario())
