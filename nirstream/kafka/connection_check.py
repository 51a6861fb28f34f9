"""Checks a command makes once, before its Kafka clients start: a warning when a SASL PLAIN password would cross
the network in clear, and a TLS handshake with each bootstrap server using the clients' own SSL context, so that a
wrong CA or host name stops the command with a message that says so. (aiokafka reports only that it could not
bootstrap, and faust retries that for ever.)"""

from __future__ import annotations

import logging
import socket
import ssl

from nirstream.core.settings import SharedSettings

log = logging.getLogger(__name__)
_warned_plain_in_clear = False


class KafkaTlsError(ConnectionError):
    """The broker's certificate was refused (unknown CA, wrong host name) or the TLS handshake failed."""


def check_kafka_security(settings: SharedSettings, timeout: float = 5.0) -> None:
    """Warn about PLAIN without TLS; raise ``KafkaTlsError`` if a reachable bootstrap server fails the handshake."""
    warn_plain_without_tls(settings)
    if settings.security.protocol in ("SSL", "SASL_SSL"):
        check_tls(settings, timeout)


def warn_plain_without_tls(settings: SharedSettings) -> bool:
    """Log a warning (once per process) for SASL PLAIN over a plaintext connection; True if it applies."""
    global _warned_plain_in_clear
    security = settings.security
    in_clear = security.protocol == "SASL_PLAINTEXT" and (security.sasl_mechanism or "PLAIN") == "PLAIN"
    if in_clear and not _warned_plain_in_clear:
        _warned_plain_in_clear = True
        log.warning("SASL PLAIN over a plaintext connection: the Kafka password for %r crosses the network "
                    "unencrypted; use protocol SASL_SSL (or a SCRAM mechanism)", security.sasl_username)
    return in_clear


def bootstrap_addresses(bootstrap_servers: str) -> list[tuple[str, int]]:
    """``host:port,[v6]:port`` -> [(host, port), ...]."""
    addresses = []
    for server in filter(None, (s.strip() for s in bootstrap_servers.split(","))):
        host, _, port = server.rpartition(":")
        addresses.append((host.strip("[]") or server, int(port) if port.isdigit() else 9092))
    return addresses


def check_tls(settings: SharedSettings, timeout: float = 5.0) -> None:
    """Handshake with every bootstrap server that answers; servers that do not answer are left to the clients'
    own retries (a broker that is away at the start is not a security problem)."""
    context: ssl.SSLContext = settings.kafka_client_options()["ssl_context"]
    cafile = settings.security.ssl_cafile
    trusted = f"CA file {cafile}" if cafile else "the system's CA certificates (no ssl_cafile set)"
    for host, port in bootstrap_addresses(settings.bootstrap_servers):
        try:
            connection = socket.create_connection((host, port), timeout=timeout)
        except OSError:
            continue
        try:
            with context.wrap_socket(connection, server_hostname=host):
                pass
        except ssl.SSLCertVerificationError as exc:
            raise KafkaTlsError(f"TLS: the certificate of Kafka at {host}:{port} was refused: {exc.verify_message} "
                                f"(certificate verify failed; trusted: {trusted}; host name checked: {host})") from None
        except ssl.SSLError as exc:
            raise KafkaTlsError(f"TLS handshake with Kafka at {host}:{port} failed: {exc.reason or exc} "
                                f"(trusted: {trusted})") from None
        except OSError:
            continue  # closed mid-handshake or timed out: the clients will retry
        finally:
            connection.close()
