"""Child processes (embedded broker, workers, the trainer service's retrains) that do not outlive the process that
started them."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1
# Loaded now, not in the forked child: between fork and exec only a system call should run.
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def _die_with_parent() -> None:
    parent = os.getppid()
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def stop_with_parent() -> Callable[[], None] | None:
    """A Popen ``preexec_fn``: the child gets SIGTERM when its parent dies, even by SIGKILL.

    Linux's parent-death signal follows the *thread* that forks the child, so it is only set
    when called from the main thread; a child started from a pool thread (``asyncio.to_thread``)
    would otherwise be stopped when that thread ends. Elsewhere None: no signal."""
    if _LIBC is None or threading.current_thread() is not threading.main_thread():
        return None
    return _die_with_parent


def terminate(process: subprocess.Popen | None, timeout: float) -> int | None:
    """SIGTERM, then SIGKILL after ``timeout`` seconds; the exit code (None if there was no process)."""
    if process is None:
        return None
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode
