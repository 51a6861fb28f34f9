"""``nirstream worker`` as a child process, as an operator would run it: start, readiness, metrics, stop.

Used by the demo, the benchmarks and the tests, so all of them drive the worker the same way.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from nirstream.devtools.embedded_broker import free_port
from nirstream.core.child_processes import stop_with_parent, terminate
from nirstream.core.settings import TopicNames


def worker_env(bootstrap: str, registry: Path, web_port: int, topics: TopicNames | None = None,
               group_id: str | None = None, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(NIRSTREAM_BOOTSTRAP_SERVERS=bootstrap, NIRSTREAM_REGISTRY=str(Path(registry).resolve()), NIRSTREAM_WEB_PORT=str(web_port),
               TF_CPP_MIN_LOG_LEVEL="2")
    if group_id:
        env["NIRSTREAM_GROUP_ID"] = group_id
    if topics:
        env.update({f"NIRSTREAM_TOPICS__{k.upper()}": v for k, v in topics.model_dump().items()})
    env.update(extra)
    return env


@dataclass
class WorkerProcess:
    bootstrap: str
    registry: Path
    topics: TopicNames | None  # None: the default topic names
    log_path: Path
    group_id: str | None = None  # None: the default group
    extra_env: dict[str, str] = field(default_factory=dict)
    web_port: int = field(default_factory=free_port)
    loglevel: str = "info"
    python: str = sys.executable  # another environment's interpreter runs the worker installed there
    # None: this process's folder. Another environment's worker runs outside the checkout, where `python -m nirstream`
    # would import the source tree instead of what that environment installed
    cwd: Path | None = None
    process: subprocess.Popen | None = None

    def start(self) -> WorkerProcess:
        env = worker_env(self.bootstrap, self.registry, self.web_port, self.topics, self.group_id, **self.extra_env)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [self.python, "-m", "nirstream", *self.command()],
            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=self.cwd,
            preexec_fn=stop_with_parent(),  # noqa: PLW1509 - only a prctl system call runs in the child
        )
        return self

    def command(self) -> list[str]:
        """The ``nirstream`` sub-command this process runs."""
        return ["worker", "--loglevel", self.loglevel]

    @property
    def pid(self) -> int:
        return self.process.pid

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}{path}", timeout=2) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited with {self.process.returncode}; log:\n{self.log_tail()}")
            try:
                if self.get("/ready")[0] == 200:
                    return
            except OSError:
                pass  # web server not up yet
            time.sleep(0.1)  # polling interval for readiness, not a synchronisation sleep
        raise TimeoutError(f"worker not ready within {timeout} s; log:\n{self.log_tail()}")

    def samples(self, names: set[str]) -> list:
        """The worker's /metrics samples whose name is in ``names``."""
        from prometheus_client.parser import text_string_to_metric_families

        body = self.get("/metrics")[1].decode()
        return [sample for family in text_string_to_metric_families(body) for sample in family.samples if sample.name in names]

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of ``name`` that carry ``labels``."""
        return sum(s.value for s in self.samples({name}) if all(s.labels.get(k) == v for k, v in labels.items()))

    def stop(self, timeout: float = 30.0) -> int:
        code = terminate(self.process, timeout)
        return 0 if code is None else code

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
