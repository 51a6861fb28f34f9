"""The trainer service as a real process for the tests: start it, read its store and metrics, make labelled pairs
of tecator spectra."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from nirstream.core.messages.common import WavelengthGrid
from nirstream.core.messages.labelled import LabelledPair
from tests.streaming import WorkerProcess

T0 = datetime(2026, 3, 1, tzinfo=UTC)
TIMEOUT = 240.0


@dataclass
class TrainerServiceProcess(WorkerProcess):
    store: Path | None = None

    def command(self) -> list[str]:
        return ["trainer", "--store", str(self.store)]

    def stored_ids(self) -> list[str]:
        if not self.store.exists():
            return []
        with sqlite3.connect(f"file:{self.store}?mode=ro", uri=True) as db:  # read-only: the service writes
            try:
                return [r[0] for r in db.execute("SELECT message_id FROM labelled_pairs")]
            except sqlite3.OperationalError:  # the service has not created its table yet
                return []

    def wait_for(self, condition, what: str, timeout: float = TIMEOUT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                found = condition()
            except OSError:  # /metrics not answering yet
                found = None
            if found not in (None, False):
                return found
            if self.process.poll() is not None:
                raise AssertionError(f"trainer service exited ({self.process.returncode}) waiting for {what}:\n"
                                     f"{self.log_tail()}")
            time.sleep(0.2)  # polling interval while waiting for an event, not a synchronisation sleep
        raise AssertionError(f"no {what} within {timeout:.0f} s; log:\n{self.log_tail()}")


def labelled(tecator, rows, spectra=None, predicted=None, analyzer="line-1", start=0, model_version="1",
             reference=None) -> list[bytes]:
    grid = WavelengthGrid.from_wavelengths(tecator.wavelengths)
    fat = tecator.y[:, tecator.target_names.index("fat")]
    spectra = tecator.X[rows] if spectra is None else spectra
    predicted = fat[rows] if predicted is None else predicted
    reference = fat[rows] if reference is None else reference
    return [LabelledPair(sample_id=f"S{start + i}", analyzer_id=analyzer, message_id=f"{analyzer}:{start + i}",
                         model_version=model_version, predicted={"fat": float(p)}, reference={"fat": float(y)},
                         error={"fat": float(p - y)}, flag="ok", measured_at=T0 + timedelta(hours=start + i),
                         grid=grid, values=[float(v) for v in x]).model_dump_json().encode()
            for i, (x, p, y) in enumerate(zip(spectra, predicted, reference, strict=True))]


def service(broker, registry, topics, tmp_path, name="trainer", **env) -> TrainerServiceProcess:
    settings = {"NIRSTREAM_CHECK_SECONDS": "1", "NIRSTREAM_WORKDIR": str(tmp_path / "retrains"), **env}
    return TrainerServiceProcess(broker.bootstrap_servers, registry.base, topics, tmp_path / f"{name}.log",
                                 extra_env=settings, store=tmp_path / "plant" / "pairs.sqlite")
