"""Keep the frameworks' chatter off a command's console: TensorFlow's and absl's start-up lines, tf.function
retracing warnings and library warnings go to a log file; the command's own lines and errors stay on the console.

TensorFlow's C++ start-up lines (``oneDNN custom operations are on``, ``All log messages before
absl::InitializeLog()``) are written straight to file descriptor 2 whatever ``TF_CPP_MIN_LOG_LEVEL`` says, so
descriptor 2 is pointed at the log file and Python's ``sys.stderr`` keeps the console (a copy of the old descriptor
2): what Python writes (logging, error messages, tracebacks) is still seen, what C++ libraries write is not. The
frameworks' Python loggers and Python warnings go to the same file.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

FRAMEWORK_LOGGERS = ("tensorflow", "absl", "h5py", "py.warnings")  # py.warnings: Python warnings, once captured


def framework_log_path() -> Path:
    """``$NIRSTREAM_LOG_DIR/frameworks.log`` (default ``./artifacts``, where the demo's and train's files go)."""
    return Path(os.environ.get("NIRSTREAM_LOG_DIR", "artifacts")) / "frameworks.log"


def send_framework_output_to(path: Path) -> Path | None:
    """Redirect descriptor 2 and the frameworks' loggers to ``path`` (appended); return it, or None (and change
    nothing) when it cannot be written. Call before the frameworks are imported and before logging is configured."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # fewer lines to the file too
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        log_file = path.open("ab")
    except OSError:
        return None
    sys.stderr.flush()
    console = os.dup(2)
    os.dup2(log_file.fileno(), 2)
    log_file.close()
    sys.stderr = os.fdopen(console, "w", buffering=1, encoding=sys.stderr.encoding, errors="backslashreplace")
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logging.captureWarnings(True)
    for name in FRAMEWORK_LOGGERS:
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        logger.propagate = False
    return path
