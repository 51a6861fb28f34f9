"""What the training install adds (``pip install 'nirstream[train]'``), and the one line that says a command needs it.

The serving install (``pip install nirstream``) runs the worker, the OPC UA server, the file bridge and ``models``;
training, evaluation, calibration transfer fits, retrains, the demo and the Keras runtime import the train extra's
packages. A command that meets one of them missing says so in one line instead of a traceback.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import metadata

TRAIN_EXTRA = "train"
# The train extra's distributions whose import name is not their own (the others import under their own name)
IMPORT_NAMES = {"scikit-learn": "sklearn", "tensorflow-cpu": "tensorflow", "pyyaml": "yaml"}


@cache
def training_modules() -> frozenset[str]:
    """The top-level import names of the train extra's distributions, read from nirstream's installed metadata (so
    pyproject's train extra stays the one list)."""
    names = set()
    for line in metadata.requires("nirstream") or []:
        if re.search(rf"""extra\s*==\s*["']{TRAIN_EXTRA}["']""", line):
            name = re.match(r"[A-Za-z0-9._-]+", line).group().lower().replace("_", "-")
            names.add(IMPORT_NAMES.get(name, name.replace("-", "_")))
    return frozenset(names)


def needs_training_install(error: BaseException) -> bool:
    """Whether ``error`` is a package of the train extra missing from a serving-only install."""
    return isinstance(error, ModuleNotFoundError) and (error.name or "").partition(".")[0] in training_modules()


def training_install_hint(what: str, error: ModuleNotFoundError) -> str:
    """The one line: ``what`` (a command, a model version) needs the training install, and how to get it."""
    return f"{what} needs the training install ({error.name} is missing): pip install 'nirstream[{TRAIN_EXTRA}]'"
