"""``nirstream watch``: a live terminal view per analyzer, from the predictions and labelled topics.

Reads the topics (no consumer group), so it shows the whole plant whatever the number of workers.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from contextlib import aclosing
from dataclasses import dataclass, field

import orjson

from nirstream.core.settings import client_options as environment_options
from nirstream.kafka.topic_reader import TopicFollower
from nirstream.stream.lab_join_store import AnalyzerStats


@dataclass
class AnalyzerView:
    predictions: int = 0
    last_values: dict[str, float] = field(default_factory=dict)  # target -> last prediction
    units: dict[str, str] = field(default_factory=dict)
    last_flag: str = ""
    model_version: str = ""
    versions_seen: list[str] = field(default_factory=list)
    arrivals: deque = field(default_factory=lambda: deque(maxlen=2000))
    lab: AnalyzerStats = field(default_factory=AnalyzerStats)

    def throughput(self, now: float, window: float = 10.0) -> float:
        recent = [t for t in self.arrivals if now - t <= window]
        return len(recent) / window


@dataclass
class WatchState:
    analyzers: dict[str, AnalyzerView] = field(default_factory=dict)
    dead_letters: int = 0
    dead_letter_reasons: Counter = field(default_factory=Counter)
    predicted_ids: set[str] = field(default_factory=set)
    labelled: list[dict] = field(default_factory=list)  # joined pairs without their spectra

    def view(self, analyzer_id: str) -> AnalyzerView:
        return self.analyzers.setdefault(analyzer_id, AnalyzerView())

    def on_prediction(self, p: dict, now: float) -> None:
        self.predicted_ids.add(p["message_id"])
        view = self.view(p["analyzer_id"])
        view.last_values = p["predictions"]
        view.units = p.get("units", {})
        view.predictions += 1
        view.last_flag = p["outlier"]["flag"] if p.get("outlier") else ""
        view.lab.flags.append(view.last_flag)
        if p["model_version"] != view.model_version:
            view.versions_seen.append(p["model_version"])
        view.model_version = p["model_version"]
        view.arrivals.append(now)

    def on_labelled(self, pair: dict) -> None:
        lab = self.view(pair["analyzer_id"]).lab
        for target, error in pair["error"].items():
            lab.add_error(target, error)
        self.labelled.append({k: v for k, v in pair.items() if k not in ("values", "grid")})


def render(state: WatchState, title: str):
    from rich.table import Table

    now = time.monotonic()
    table = Table(title=title)
    for column in ("analyzer", "predictions", "last", "flag", "outliers", "RMSEP vs lab", "bias vs lab", "spectra/s", "model"):
        table.add_column(column, justify="right" if column not in ("analyzer", "flag") else "left")
    for analyzer_id, v in sorted(state.analyzers.items()):
        flag_style = {"ok": "green", "warning": "yellow", "outlier": "red"}.get(v.last_flag, "")
        targets = list(v.last_values)  # one line per target in the cells that have one
        table.add_row(
            analyzer_id, str(v.predictions),
            "\n".join(f"{t} {v.last_values[t]:.2f} {v.units.get(t, '')}".rstrip() for t in targets),
            f"[{flag_style}]{v.last_flag}[/]", f"{v.lab.outlier_fraction:.0%}",
            "\n".join(f"{v.lab.rmsep(t):.2f}" for t in targets), "\n".join(f"{v.lab.bias(t):+.2f}" for t in targets),
            f"{v.throughput(now):.1f}", " → ".join(v.versions_seen[-3:]),
        )
    reasons = ", ".join(f"{reason} {n}" for reason, n in state.dead_letter_reasons.most_common())
    table.caption = f"dead letters: {state.dead_letters}" + (f" ({reasons})" if reasons else "")
    return table


async def follow(bootstrap: str, topics: dict[str, str], state: WatchState, stop: asyncio.Event,
                 from_beginning: bool = True, client_options: dict | None = None) -> None:
    """Update ``state`` from the predictions, labelled and dead-letter topics until ``stop`` is set."""
    kinds = {topics["predictions"]: "prediction", topics["labelled"]: "labelled", topics["deadletter"]: "dead"}
    follower = TopicFollower(client_options or environment_options(bootstrap), *kinds, from_beginning=from_beginning,
                             fetch_max_wait_ms=100)
    async with aclosing(follower.batches(stop)) as batches:
        async for messages in batches:
            now = time.monotonic()
            for message in messages:
                kind = kinds[message.topic]
                body = orjson.loads(message.value)
                if kind == "dead":
                    state.dead_letters += 1
                    state.dead_letter_reasons[body.get("reason", "?")] += 1
                    continue
                state.on_prediction(body, now) if kind == "prediction" else state.on_labelled(body)


async def watch(bootstrap: str, topics: dict[str, str], from_beginning: bool, client_options: dict | None = None) -> None:
    from rich.live import Live

    state, stop = WatchState(), asyncio.Event()
    task = asyncio.create_task(follow(bootstrap, topics, state, stop, from_beginning, client_options))
    try:
        with Live(render(state, "nirstream watch (Ctrl-C quits)"), refresh_per_second=4) as screen:
            while not task.done():
                await asyncio.sleep(0.25)  # screen refresh interval
                screen.update(render(state, "nirstream watch (Ctrl-C quits)"))
    finally:
        stop.set()
        await task
