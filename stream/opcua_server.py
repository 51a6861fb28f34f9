"""The OPC UA address space of ``nirstream opcua``: the latest prediction per analyzer and target as process values.

Laid out after the OPC UA Analyser Devices companion model (ADI) as far as it fits without importing its nodeset
(docs/opcua.md has the mapping), in the namespace ``urn:nirstream``::

    Objects/nirstream         i=1                       DI DeviceSet
      <analyzer>              s=<analyzer>              AnalyserDeviceType
        Channel1              s=<analyzer>/Channel1     AnalyserChannelType (its Stream and ChemometricModel folded in)
          <target>            s=<analyzer>/Channel1/<target>            the model's output (MVAOutputParameterType)
            Value, IntervalLow, IntervalHigh, ModelVersion, Flag       s=<analyzer>/Channel1/<target>/Value ...
            Unit (property)

Nodes appear when an analyzer/target is first seen. NodeIds are string ids built from the analyzer id and target
name, percent-encoded (so distinct names never share an id and clients can bookmark them). Every value carries
the spectrum's measurement time as source timestamp and a status: Good; Uncertain when the prediction is flagged
(warning, outlier); Bad_NoCommunication, with a null value as OPC UA requires of Bad values, when no newer prediction
came within the staleness time. An output's source time only moves forward: replays and late arrivals are skipped,
and so are values dated more than FUTURE_TOLERANCE ahead of the server's clock.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from asyncua import Server, ua
from cryptography import x509

from nirstream.core.messages.prediction import PredictionMessage
from nirstream.stream.log_sampling import worth_logging
from nirstream.stream.settings import OpcUaOptions

log = logging.getLogger(__name__)

CHANNEL = "Channel1"  # nirstream sees each analyzer as one measuring channel
DEFAULT_APPLICATION_URI = "urn:nirstream:opcua-server"
GOOD = ua.StatusCode(ua.StatusCodes.Good)
UNCERTAIN = ua.StatusCode(ua.StatusCodes.Uncertain)
STALE = ua.StatusCode(ua.StatusCodes.BadNoCommunication)
NO_INTERVAL = ua.StatusCode(ua.StatusCodes.BadNoData)  # the model has no prediction intervals
# Outputs only move forward, so one value dated far ahead (a wrong analyzer clock) would block every later one until
# restart; minutes cover ordinary clock drift between analyzer and server.
FUTURE_TOLERANCE = timedelta(minutes=5)
# Same-time message ids kept per output: a producer sending many spectra with one timestamp must not grow memory
# without bound; a replay of an id already dropped is written again (a duplicate value, never a step back).
MAX_IDS_AT_SOURCE_TIME = 1024


def node_id_string(*names: str) -> str:
    """The string NodeId of a node: its path of names, each percent-encoded, joined by ``/``."""
    return "/".join(quote(name, safe=":") for name in names)


def browse_name_text(name: str) -> str:
    """A name as shown to clients: printable, at most 128 characters."""
    printable = "".join(ch if ch.isprintable() else "_" for ch in name).strip()
    return (printable or "_")[:128]


@dataclass
class Output:
    """One analyzer/target output: its variables' NodeIds and what the staleness check needs."""

    value: ua.NodeId
    low: ua.NodeId
    high: ua.NodeId
    version: ua.NodeId
    flag: ua.NodeId
    unit: ua.NodeId
    unit_text: str = ""
    source_time: datetime | None = None  # the last prediction's spectrum time
    # message ids written with that time, oldest first (a replay's test; at most MAX_IDS_AT_SOURCE_TIME)
    ids_at_source_time: dict[str, None] = field(default_factory=dict)
    received: float = 0.0  # time.monotonic() of the last prediction
    stale: bool = False

    @property
    def variables(self) -> tuple[ua.NodeId, ...]:
        return self.value, self.low, self.high, self.version, self.flag


class ProcessValueServer:
    """An asyncua server whose address space holds the latest prediction per analyzer and target."""

    def __init__(self, options: OpcUaOptions):
        self.options = options
        self.server = Server()
        self.namespace = 0
        self.outputs: dict[tuple[str, str], Output] = {}
        self.skipped_outputs = 0  # predictions for outputs beyond max_outputs
        self.skipped_older = 0  # values not newer than their output's (replays, late arrivals)
        self.skipped_future = 0  # values dated more than FUTURE_TOLERANCE ahead of the server's clock
        self.updates = 0  # outputs written (one prediction writes one per target)
        self._objects: set[str] = set()  # string ids of the analyzer and channel objects created
        self._root: ua.NodeId | None = None

    async def start(self) -> None:
        """Check the security settings, build the root of the address space, listen."""
        certificate_uri = await self._configure_security()
        await self.server.init()
        self.server.set_endpoint(self.options.endpoint)
        self.server.set_server_name("nirstream OPC UA server")
        self.server.set_identity_tokens([ua.AnonymousIdentityToken])  # read-only values: no user accounts to manage
        await self.server.set_application_uri(certificate_uri or DEFAULT_APPLICATION_URI)
        self.namespace = await self.server.register_namespace(self.options.namespace_uri)
        # a numeric id: no analyzer's string id can equal it
        root = await self.server.nodes.objects.add_folder(ua.NodeId(1, self.namespace),
                                                          ua.QualifiedName("nirstream", self.namespace))
        await root.write_attribute(ua.AttributeIds.Description, ua.DataValue(ua.Variant(
            ua.LocalizedText("nirstream's analyzers (ADI: the DeviceSet of AnalyserDeviceType objects)"))))
        self._root = root.nodeid
        try:
            await self.server.start()
        except OSError as exc:  # e.g. the port is taken: a clear error, not a traceback
            raise ValueError(f"cannot listen on {self.options.endpoint}: {exc}") from None
        log.info("OPC UA server listening on %s (security %s, namespace %s)", self.options.endpoint,
                 self.options.security_mode, self.options.namespace_uri)

    async def stop(self) -> None:
        await self.server.stop()

    async def _configure_security(self) -> str | None:
        """Load the certificate and key for SignAndEncrypt (clear errors when they are missing); the application
        URI that the certificate names, which the server must announce (clients compare them)."""
        options = self.options
        if options.security_mode == "None":
            if options.certificate or options.private_key or options.trusted_clients:
                raise ValueError("--certificate, --private-key and --trusted-clients need --security-mode SignAndEncrypt")
            if not options.allow_insecure:
                raise ValueError("security mode None serves every value unauthenticated and unencrypted to anyone who "
                                 "reaches the port: use --security-mode SignAndEncrypt (plants), or pass --allow-insecure "
                                 "(NIRSTREAM_OPCUA__ALLOW_INSECURE=true) for a trial")
            log.warning("OPC UA security mode None on %s (--allow-insecure): no authentication, no encryption",
                        options.endpoint)
            self.server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
            return None
        missing = [flag for flag, path in (("--certificate", options.certificate), ("--private-key", options.private_key))
                   if path is None]
        if missing:
            raise ValueError(f"security mode SignAndEncrypt needs {' and '.join(missing)} (certificate and private key files)")
        if options.trusted_clients is None:
            raise ValueError("security mode SignAndEncrypt needs --trusted-clients: a folder of the client certificates "
                             "(or their CA certificates) allowed to connect; without one every client certificate "
                             "would be accepted")
        for what, path in (("certificate", options.certificate), ("private key", options.private_key)):
            if not path.is_file():
                raise FileNotFoundError(f"OPC UA {what} file {path} does not exist")
        try:
            await self.server.load_certificate(str(options.certificate))
        except ValueError as exc:
            raise ValueError(f"OPC UA certificate {options.certificate} is not a PEM or DER certificate: {exc}") from None
        try:
            await self.server.load_private_key(str(options.private_key))
        except (ValueError, TypeError) as exc:  # TypeError: a password-protected key
            raise ValueError(f"OPC UA private key {options.private_key} cannot be read (PEM or DER, unencrypted): {exc}") from None
        self.server.set_security_policy([ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt])
        await self._trust_only(options.trusted_clients)
        return _certificate_uri(self.server.iserver.certificate)

    async def _trust_only(self, folder) -> None:
        from asyncua.crypto.truststore import TrustStore
        from asyncua.crypto.validator import CertificateValidator, CertificateValidatorOptions

        if not folder.is_dir():
            raise FileNotFoundError(f"trusted client certificate folder {folder} does not exist")
        store = TrustStore([folder], [])
        await store.load()
        options = CertificateValidatorOptions.BASIC_VALIDATION | CertificateValidatorOptions.PEER_CLIENT
        self.server.set_certificate_validator(CertificateValidator(options | CertificateValidatorOptions.TRUSTED, store))

    # ------------------------------------------------------------------ updates

    async def publish(self, prediction: PredictionMessage) -> int:
        """Write one prediction's values (creating their nodes when first seen); how many outputs were updated.
        An output moves only forward in source time: a value measured before its current one (a worker's replay,
        however late, or a late arrival) and the same prediction again (same time and message id) change nothing,
        so a historian never records a step back."""
        source_time = _utc(prediction.spectrum_timestamp)
        flag = prediction.outlier.flag if prediction.outlier else "ok"
        quality = GOOD if flag == "ok" else UNCERTAIN
        updated = 0
        received = datetime.now(UTC)
        for target, value in prediction.predictions.items():
            output = await self._output(prediction.analyzer_id, target)
            if output is None or not self._is_newer(output, source_time, prediction.message_id, received):
                continue
            interval = (prediction.intervals or {}).get(target)
            low, high, interval_status = (interval.low, interval.high, quality) if interval else (None, None, NO_INTERVAL)
            writes = {
                output.value: (ua.Variant(float(value), ua.VariantType.Double), quality),
                output.low: (ua.Variant(low, ua.VariantType.Double if interval else ua.VariantType.Null), interval_status),
                output.high: (ua.Variant(high, ua.VariantType.Double if interval else ua.VariantType.Null), interval_status),
                output.version: (ua.Variant(prediction.model_version, ua.VariantType.String), GOOD),
                output.flag: (ua.Variant(flag, ua.VariantType.String), GOOD),
            }
            now = datetime.now(UTC)
            for node, (variant, status) in writes.items():
                await self.server.write_attribute_value(node, ua.DataValue(variant, StatusCode=status,
                                                                           SourceTimestamp=source_time, ServerTimestamp=now))
            unit = prediction.units.get(target, "")
            if unit != output.unit_text:
                output.unit_text = unit
                await self.server.write_attribute_value(output.unit, ua.DataValue(ua.Variant(unit, ua.VariantType.String)))
            if source_time != output.source_time:
                output.ids_at_source_time.clear()
            output.ids_at_source_time[prediction.message_id] = None
            if len(output.ids_at_source_time) > MAX_IDS_AT_SOURCE_TIME:
                del output.ids_at_source_time[next(iter(output.ids_at_source_time))]  # the oldest
            output.source_time, output.received, output.stale = source_time, time.monotonic(), False
            updated += 1
        self.updates += updated
        return updated

    def _is_newer(self, output: Output, source_time: datetime, message_id: str, now: datetime) -> bool:
        """Whether a value measured at ``source_time`` may replace the output's current one (and is not dated beyond
        FUTURE_TOLERANCE after ``now``); counts and logs those that may not (the first, then every thousandth)."""
        if source_time > now + FUTURE_TOLERANCE:
            self.skipped_future += 1
            if worth_logging(self.skipped_future, first=1):
                log.warning("%d prediction value(s) dated more than %s ahead of the server's clock skipped (an analyzer "
                            "clock set wrong?), e.g. %s measured %s at %s", self.skipped_future, FUTURE_TOLERANCE,
                            message_id, source_time.isoformat(), now.isoformat())
            return False
        current = output.source_time
        if current is None or source_time > current or (source_time == current and message_id not in output.ids_at_source_time):
            return True
        self.skipped_older += 1
        if worth_logging(self.skipped_older, first=1):
            log.info("%d prediction value(s) not newer than their output's skipped (replays or late arrivals), e.g. "
                     "%s measured %s, the output holds %s", self.skipped_older, message_id, source_time.isoformat(),
                     current.isoformat())
        return False

    @property
    def stale_outputs(self) -> int:
        return sum(output.stale for output in self.outputs.values())

    async def mark_stale(self, now: float | None = None) -> int:
        """Turn Bad every output with no new prediction for ``stale_seconds``; how many. Its variables keep the last
        source time; their values become null, as OPC UA requires of a Bad value (Part 4, 7.7.1)."""
        now = time.monotonic() if now is None else now
        marked = 0
        for output in list(self.outputs.values()):
            if output.stale or now - output.received < self.options.stale_seconds:
                continue
            output.stale = True
            stale = ua.DataValue(ua.Variant(), StatusCode=STALE, SourceTimestamp=output.source_time,
                                 ServerTimestamp=datetime.now(UTC))
            for node in output.variables:
                await self.server.write_attribute_value(node, stale)
            marked += 1
        return marked

    # ------------------------------------------------------------------ nodes

    async def _output(self, analyzer: str, target: str) -> Output | None:
        """The output's nodes, created with their analyzer and channel when first seen; None beyond max_outputs."""
        output = self.outputs.get((analyzer, target))
        if output is not None:
            return output
        if len(self.outputs) >= self.options.max_outputs:
            self.skipped_outputs += 1
            if worth_logging(self.skipped_outputs, first=1):
                log.warning("address space full (max_outputs %d): %d prediction value(s) for new outputs skipped, "
                            "e.g. %s/%s", self.options.max_outputs, self.skipped_outputs, analyzer, target)
            return None
        device = await self._object(self._root, (analyzer,), "ADI: AnalyserDeviceType (one NIR analyzer)")
        channel = await self._object(device, (analyzer, CHANNEL),
                                     "ADI: AnalyserChannelType with its Stream; the chemometric model's outputs below")
        node = await self._object(channel, (analyzer, CHANNEL, target),
                                  "ADI: an output of the ChemometricModel (MVAOutputParameterType)")
        parent = self.server.get_node(node)
        variables = {}
        for name, initial, kind, description in (
            ("Value", math.nan, ua.VariantType.Double, "the predicted value; source timestamp: the spectrum's measurement time"),
            ("IntervalLow", math.nan, ua.VariantType.Double, "lower end of the prediction interval (the model's coverage)"),
            ("IntervalHigh", math.nan, ua.VariantType.Double, "upper end of the prediction interval"),
            ("ModelVersion", "", ua.VariantType.String, "registry version of the model that predicted the value"),
            ("Flag", "", ua.VariantType.String, "ok, warning (beyond a 95 % T²/Q limit) or outlier (beyond 99 %); "
                                                "ADI: the output's AlarmState"),
        ):
            variable = await parent.add_variable(self._id(analyzer, CHANNEL, target, name), self._name(name),
                                                 ua.Variant(initial, kind))
            await _describe(variable, description)
            variables[name] = variable.nodeid
        unit = await parent.add_property(self._id(analyzer, CHANNEL, target, "Unit"), self._name("Unit"),
                                         ua.Variant("", ua.VariantType.String))
        output = Output(variables["Value"], variables["IntervalLow"], variables["IntervalHigh"], variables["ModelVersion"],
                        variables["Flag"], unit.nodeid)
        self.outputs[(analyzer, target)] = output
        log.info("new OPC UA output %s", node_id_string(analyzer, CHANNEL, target))
        return output

    async def _object(self, parent: ua.NodeId, names: tuple[str, ...], description: str) -> ua.NodeId:
        node_id = self._id(*names)
        if node_id.Identifier not in self._objects:
            created = await self.server.get_node(parent).add_object(node_id, self._name(names[-1]))
            await _describe(created, description)
            self._objects.add(node_id.Identifier)
        return node_id

    def _id(self, *names: str) -> ua.NodeId:
        return ua.NodeId(node_id_string(*names), self.namespace, ua.NodeIdType.String)

    def _name(self, name: str) -> ua.QualifiedName:
        return ua.QualifiedName(browse_name_text(name), self.namespace)


async def _describe(node, text: str) -> None:
    await node.write_attribute(ua.AttributeIds.Description, ua.DataValue(ua.Variant(ua.LocalizedText(text))))


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _certificate_uri(certificate: x509.Certificate) -> str | None:
    """The application URI in the certificate's subjectAltName (OPC UA Part 6 6.2.2), if it has one."""
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        log.warning("the OPC UA certificate has no subjectAltName URI; clients may refuse it")
        return None
    uris = names.get_values_for_type(x509.UniformResourceIdentifier)
    return uris[0] if uris else None
