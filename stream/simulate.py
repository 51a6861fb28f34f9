"""Simulated inline analyzers: replay real spectra to the spectra topic at a steady rate."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from aiokafka import AIOKafkaProducer

from nirstream.core.codec import encode_binary, encode_json
from nirstream.core.datasets import SpectralDataset
from nirstream.core.datasets.registry import open_dataset
from nirstream.core.schemas import SpectrumHeader, WavelengthGrid

SOURCE_HELP = "DATASET[:SPLIT], e.g. tablets1:test, tablets2:test, tecator:test or plant.csv"


def open_source(spec: str) -> SpectralDataset:
    name, _, split = spec.partition(":")
    dataset = open_dataset(name)
    return dataset.split(split) if split else dataset


@dataclass
class Analyzer:
    """One simulated instrument cycling through the spectra of ``dataset``."""

    analyzer_id: str
    dataset: SpectralDataset
    encoding: str = "binary"
    sent: int = 0

    def __post_init__(self) -> None:
        self.grid = WavelengthGrid.from_wavelengths(self.dataset.wavelengths)
        self._encode = encode_binary if self.encoding == "binary" else encode_json

    def row(self, sequence: int) -> int:
        return sequence % self.dataset.n_samples

    def message(self, sequence: int) -> bytes:
        row = self.row(sequence)
        header = SpectrumHeader(
            analyzer_id=self.analyzer_id, sequence=sequence, grid=self.grid,
            sample_id=f"{self.analyzer_id}/{self.dataset.sample_names[row]}/{sequence}",
        )
        return self._encode(header, self.dataset.X[row])

    def reference(self, sequence: int, target: str) -> float:
        return float(self.dataset.target(target)[self.row(sequence)])


async def replay(
    bootstrap_servers: str,
    topic: str,
    analyzers: list[Analyzer],
    rate: float,
    count: int | None = None,
    duration: float | None = None,
    on_progress: Callable[[int], None] | None = None,
    client_options: dict | None = None,
) -> int:
    """Send ``rate`` spectra/s per analyzer until ``count`` each or ``duration`` seconds; return total sent."""
    if count is None and duration is None:
        raise ValueError("give a count or a duration")
    producer = AIOKafkaProducer(**(client_options or {"bootstrap_servers": bootstrap_servers}), linger_ms=5, acks="all")
    await producer.start()
    total, started = 0, time.monotonic()
    try:
        sequence = 0
        while (count is None or sequence < count) and (duration is None or time.monotonic() - started < duration):
            for analyzer in analyzers:
                await producer.send(topic, analyzer.message(sequence), key=analyzer.analyzer_id.encode())
                analyzer.sent += 1
                total += 1
            sequence += 1
            if on_progress:
                on_progress(len(analyzers))
            due = started + sequence / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)  # the analyzers' measurement rate
        await producer.flush()
    finally:
        await producer.stop()
    return total


def rmsep(errors: list[float]) -> float:
    return float(np.sqrt(np.mean(np.square(errors)))) if errors else float("nan")
