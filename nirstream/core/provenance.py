"""Where a result file came from: the commit, the command, the seeds, the date and the machine, written beside the figures.

Every figure in the README, the docs pages and the reports is read from a JSON file its script wrote; this is the one
place that stamps such a file, so a reader can re-run exactly what produced it."""

from __future__ import annotations

import json
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def current_commit(directory: Path | None = None) -> str | None:
    """The checkout's commit (with ``+dirty`` when files differ from it), or None outside a git checkout."""
    cwd = directory or Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("+dirty" if dirty else "")


# The commit when this process first imported the module (a script imports it before it computes anything): a long
# benchmark can outlive several commits, and the code that ran is the one it started with.
STARTED_AT_COMMIT = current_commit()


def machine() -> dict[str, Any]:
    """What ran it: timings and some results (thread counts, BLAS) depend on the platform and the cores."""
    return {"platform": platform.platform(), "processor": platform.machine(), "cpu_count": os.cpu_count(),
            "python": platform.python_version()}


def provenance(seeds: Sequence[int] | None = None, argv: Sequence[str] | None = None) -> dict[str, Any]:
    """The commit the process started at (and, if the checkout moved on while it ran, the one when written), the
    command line that ran (``argv`` defaults to this process's), the seeds, the date (``written_at``, UTC) and the
    machine."""
    if argv is None:  # a script runs as `python path/to/script.py ...`, an entry point under its own name
        program = sys.argv[0]
        argv = ["python", program, *sys.argv[1:]] if program.endswith(".py") else [Path(program).name, *sys.argv[1:]]
    now = current_commit()
    return {"commit": STARTED_AT_COMMIT or now, **({"commit_when_written": now} if now != STARTED_AT_COMMIT else {}),
            "command": shlex.join(argv),
            "seeds": list(seeds) if seeds is not None else None,
            "written_at": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine()}


def write_result(path: Path, result: dict[str, Any], *, seeds: Sequence[int] | None = None,
                 argv: Sequence[str] | None = None, indent: int = 2) -> Path:
    """Write ``result`` as JSON to ``path`` with a ``provenance`` entry; print and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**result, "provenance": provenance(seeds, argv)}, indent=indent, default=str))
    print(f"wrote {path}")
    return path
