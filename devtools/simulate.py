"""Simulated inline analyzers: replay real spectra at a steady rate, with process effects and faults,
and publish lab reference values for a fraction of the samples after a delay.

Process effects grow with time since the start (per minute, in units of the data's std):

* ``drift``  a broad absorption band growing on the spectrum (like moisture uptake). EMSC
             removes offsets and slopes, not a band, so this one moves predictions and Q.
* ``noise``  detector noise growing.
* ``ageing`` lamp ageing: the intensity falls by this fraction per minute (multiplicative).
* ``step_at`` seconds after which the analyzer sees only high-content samples (a step change).
* ``faults`` fraction of messages replaced by a fault: NaN burst, saturated detector, wrong
             wavelength grid or garbage bytes (these get dead letters, not predictions).
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from aiokafka import AIOKafkaProducer

from nirstream.core.settings import SharedSettings
from nirstream.core.messages.codec import encode_binary, encode_json
from nirstream.core.datasets import SpectralDataset
from nirstream.core.datasets.catalog import open_dataset
from nirstream.core.messages.common import WavelengthGrid
from nirstream.core.messages.reference import ReferenceMessage
from nirstream.core.messages.spectrum import SpectrumHeader

SOURCE_HELP = "DATASET[:SPLIT], e.g. tablets1:test, tablets2:test, tecator:test or plant.csv"
ANALYZER_HELP = (
    "ID=SOURCE[,effect=value...], e.g. line-2=tablets1:test,drift=0.5,faults=0.03; effects: "
    "drift, noise, ageing (per minute), step_at (s), faults (fraction), start (first row), target (stepping column), "
    "drift_ceiling (absorbance the drift band stops growing below)"
)
FAULT_KINDS = ("nan_burst", "saturated", "wrong_grid", "garbage")
SATURATION_CEILING = 10.0  # what a clipped detector reads in simulated saturation faults


def open_source(spec: str) -> SpectralDataset:
    name, _, split = spec.partition(":")
    dataset = open_dataset(name)
    return dataset.split(split) if split else dataset


@dataclass
class ProcessEffects:
    drift: float = 0.0
    noise: float = 0.0
    ageing: float = 0.0
    step_at: float | None = None
    faults: float = 0.0
    # the drift band stops growing once it would lift a spectrum of the set to this value (None: it keeps growing):
    # moisture uptake levels off, and a run that lasts longer (a slow machine) must not drive spectra into the
    # detector's ceiling, where the worker rightly calls them saturated
    drift_ceiling: float | None = None


@dataclass
class Analyzer:
    """One simulated instrument cycling through the spectra of ``dataset``."""

    analyzer_id: str
    dataset: SpectralDataset
    encoding: str = "binary"
    effects: ProcessEffects = field(default_factory=ProcessEffects)
    start_row: int = 0
    seed: int = 0
    target: str | None = None  # whose content steps up at step_at; the first reference column when None
    sent: int = 0
    faults_sent: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.grid = WavelengthGrid.from_wavelengths(self.dataset.wavelengths)
        self._encode = encode_binary if self.encoding == "binary" else encode_json
        self._rng = np.random.default_rng(self.seed)
        self._std = float(self.dataset.X.std())
        wl = self.dataset.wavelengths
        center, width = wl[0] + 0.65 * (wl[-1] - wl[0]), 0.04 * (wl[-1] - wl[0])
        self._band = np.exp(-0.5 * ((wl - center) / width) ** 2)
        self._drift_cap = None  # the band's largest height (absorbance) that keeps every spectrum under drift_ceiling
        if self.effects.drift_ceiling is not None:
            inside = self._band > 1e-6
            self._drift_cap = max(0.0, float(np.min((self.effects.drift_ceiling - self.dataset.X[:, inside])
                                                    / self._band[inside])))
        content = self.dataset.target(self.target) if self.target else self.dataset.y[:, 0]
        self._high_rows = np.flatnonzero(content >= np.quantile(content, 0.75))
        self.rows: dict[int, int] = {}
        # A plant meets its samples in no particular order: replay the set in a seeded random order.
        self._order = np.random.default_rng(self.seed).permutation(self.dataset.n_samples)

    @classmethod
    def from_spec(cls, spec: str, encoding: str = "binary", seed: int = 0) -> Analyzer:
        """Parse ``ID=SOURCE[,effect=value...]`` (see ANALYZER_HELP)."""
        analyzer_id, _, rest = spec.partition("=")
        source, *options = rest.split(",")
        if not analyzer_id or not source:
            raise ValueError(f"bad analyzer spec {spec!r}: {ANALYZER_HELP}")
        values = dict(option.split("=", 1) for option in options)
        start = int(values.pop("start", 0))
        target = values.pop("target", None)
        unknown = set(values) - set(ProcessEffects.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown effect(s) {sorted(unknown)} in {spec!r}: {ANALYZER_HELP}")
        effects = ProcessEffects(**{k: float(v) for k, v in values.items()})
        return cls(analyzer_id, open_source(source), encoding, effects, start, seed, target)

    def row(self, sequence: int, elapsed: float) -> int:
        step = self.effects.step_at is not None and elapsed >= self.effects.step_at
        rows = self._high_rows if step else None
        index = (self.start_row + sequence) % (len(rows) if step else self.dataset.n_samples)
        return int(rows[index] if step else self._order[index])

    def spectrum(self, row: int, elapsed: float) -> np.ndarray:
        minutes, e = elapsed / 60.0, self.effects
        height = e.drift * minutes * self._std
        if self._drift_cap is not None:
            height = min(height, self._drift_cap)
        x = self.dataset.X[row] * (1.0 - e.ageing * minutes) + height * self._band
        if e.noise:
            x = x + self._rng.normal(0.0, e.noise * minutes * self._std + 1e-12, x.shape)
        return x

    def message(self, sequence: int, elapsed: float) -> tuple[bytes, str | None]:
        """(encoded message, fault kind or None). Faulty messages are meant for the dead-letter topic."""
        row = self.row(sequence, elapsed)
        self.rows[sequence] = row
        header = SpectrumHeader(analyzer_id=self.analyzer_id, sequence=sequence, grid=self.grid,
                                sample_id=f"{self.analyzer_id}/{self.dataset.sample_names[row]}/{sequence}")
        values = self.spectrum(row, elapsed)
        if self.effects.faults and self._rng.random() < self.effects.faults:
            kind = FAULT_KINDS[int(self._rng.integers(len(FAULT_KINDS)))]
            self.faults_sent[kind] += 1
            return self._fault(kind, header, values), kind
        return self._encode(header, values), None

    def _fault(self, kind: str, header: SpectrumHeader, values: np.ndarray) -> bytes:
        if kind == "nan_burst":
            values = values.copy()
            start = int(self._rng.integers(0, values.size - 10))
            values[start : start + 10] = np.nan
            return encode_binary(header, values)
        if kind == "saturated":
            return encode_binary(header, np.full_like(values, SATURATION_CEILING))
        if kind == "wrong_grid":
            shifted = header.grid.model_copy(update={"start_nm": header.grid.start_nm + 10 * header.grid.step_nm})
            return encode_binary(header.model_copy(update={"grid": shifted}), values)
        return self._rng.bytes(200)

    def reference(self, sequence: int, target: str) -> float:
        return float(self.dataset.target(target)[self.rows[sequence]])

    def reference_message(self, sequence: int) -> ReferenceMessage:
        row = self.rows[sequence]
        return ReferenceMessage(
            sample_id=f"{self.analyzer_id}/{self.dataset.sample_names[row]}/{sequence}",
            analyzer_id=self.analyzer_id,
            values={name: float(self.dataset.y[row, i]) for i, name in enumerate(self.dataset.target_names)},
        )


@dataclass
class ReplayStats:
    sent: int = 0
    valid: Counter = field(default_factory=Counter)  # per analyzer
    faults: Counter = field(default_factory=Counter)  # per kind
    references: int = 0


async def replay(
    bootstrap_servers: str,
    topic: str,
    analyzers: list[Analyzer],
    rate: float,
    count: int | None = None,
    duration: float | None = None,
    on_progress: Callable[[int], None] | None = None,
    client_options: dict | None = None,
    reference_topic: str | None = None,
    reference_fraction: float = 0.0,
    reference_delay: float = 0.0,
    seed: int = 0,
    stop: asyncio.Event | None = None,
) -> ReplayStats:
    """Send ``rate`` spectra/s per analyzer until ``count`` each, ``duration`` s or ``stop`` is set; then the
    pending lab values."""
    if count is None and duration is None and stop is None:
        raise ValueError("give a count, a duration or a stop event")
    rng = np.random.default_rng(seed)
    options = client_options or SharedSettings.load(bootstrap_servers=bootstrap_servers).kafka_producer_options()
    producer = AIOKafkaProducer(**options, linger_ms=5)
    await producer.start()
    stats, due_references, started = ReplayStats(), [], time.monotonic()

    async def send_due_references(now: float) -> None:
        while due_references and due_references[0][0] <= now:
            _, _, analyzer_id, message = heapq.heappop(due_references)
            await producer.send(reference_topic, message.model_dump_json().encode(), key=analyzer_id.encode())
            stats.references += 1

    try:
        sequence = 0
        while ((count is None or sequence < count) and (duration is None or time.monotonic() - started < duration)
               and not (stop is not None and stop.is_set())):
            elapsed = time.monotonic() - started
            for analyzer in analyzers:
                raw, fault = analyzer.message(sequence, elapsed)
                await producer.send(topic, raw, key=analyzer.analyzer_id.encode())
                analyzer.sent += 1
                stats.sent += 1
                if fault:
                    stats.faults[fault] += 1
                    continue
                stats.valid[analyzer.analyzer_id] += 1
                if reference_topic and rng.random() < reference_fraction:
                    heapq.heappush(due_references, (time.monotonic() + reference_delay, stats.sent, analyzer.analyzer_id,
                                                    analyzer.reference_message(sequence)))
            sequence += 1
            if on_progress:
                on_progress(len(analyzers))
            await send_due_references(time.monotonic())
            delay = started + sequence / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)  # the analyzers' measurement rate
        if due_references:
            await asyncio.sleep(max(0.0, max(due for due, *_ in due_references) - time.monotonic()))  # the lab's delay
            await send_due_references(float("inf"))
        await producer.flush()
    finally:
        await producer.stop()
    return stats
