"""Child processes (embedded broker, workers) that do not outlive the process that started them."""

from __future__ import annotations

import ctypes
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1
# Loaded now, not in the forked child: between fork and exec only a system call should run.
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def die_with_parent() -> None:
    """``preexec_fn`` for Popen: the child gets SIGTERM when its parent dies, even by SIGKILL.

    Linux only (elsewhere a no-op). The signal follows the *thread* that started the child,
    so start children from a long-lived thread (the main thread, as nirstream does)."""
    if _LIBC is None:
        return
    parent = os.getppid()
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)
