"""The demo's first model: ``nirstream train --quick`` in a child process. (Retrains are the trainer service's:
``trainer_process.py``.)

A child process (not a thread) so that Ctrl-C stops it at once and its CPU use cannot stall
the demo's event loop; its output goes to a log file, and the epoch it has reached is read
back from that log for the one-line status on screen.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from nirstream.core.child_processes import stop_with_parent, terminate

_EPOCH = re.compile(rb"Epoch (\d+)/(\d+)")


def epoch_progress(log: bytes) -> str:
    """", epoch 3/8" from a Keras training log, or "" before the first epoch."""
    epochs = _EPOCH.findall(log)
    return f", epoch {int(epochs[-1][0])}/{int(epochs[-1][1])}" if epochs else ""


@dataclass
class TrainingProcess:
    """``nirstream train --quick`` on the base protocol."""

    registry: Path
    protocol: str
    log_path: Path
    seed: int = 0
    process: subprocess.Popen | None = field(default=None, init=False)

    def start(self) -> TrainingProcess:
        # calibration on validation: the demo shows the swap, not interval coverage, and must stay quick
        command = [sys.executable, "-m", "nirstream", "train", "--quick", "--no-pls", "--calibration", "validation",
                   "--protocol", self.protocol,
                   "--seed", str(self.seed), "--registry", str(self.registry),
                   "--report-dir", str(self.log_path.parent / f"{self.log_path.stem}-report")]
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        preexec_fn=stop_with_parent())  # noqa: PLW1509 - only a prctl call in the child
        return self

    @property
    def finished(self) -> bool:
        return self.process is not None and self.process.poll() is not None

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def _log(self) -> bytes:
        try:
            return self.log_path.read_bytes()
        except OSError:
            return b""

    def status(self) -> str:
        """One line for the screen: what the training is doing now."""
        if self.process is None:
            return "not started"
        if self.finished:
            return "training finished" if self.returncode == 0 else f"training failed (exit {self.returncode}; log {self.log_path})"
        return f"training a quick {self.protocol} model{epoch_progress(self._log())}"

    def stop(self, timeout: float = 2.0) -> None:
        terminate(self.process, timeout)

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self._log().decode(errors="replace").splitlines()[-lines:])
