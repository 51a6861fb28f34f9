"""Pauses between retries against a broker that is away: doubling from a first pause up to a ceiling, cut short
when the caller is asked to stop. One definition for the worker's publishing, the file bridge's publisher and
the topic follower (each picks its own first pause and ceiling).

Why not tenacity or stamina: both retry a call that is made again whole. Here what is retried changes between
attempts (the worker re-sends only the messages still unacknowledged, swaps refused ones for dead letters,
turns ``/ready`` false and counts each re-sent message), and a pause must end the moment the service stops
(mode's ``Service.sleep`` or an ``asyncio.Event``). What would remain of such a library is this doubling.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    first: float
    ceiling: float

    def pauses(self) -> Iterator[float]:
        """first, 2 first, 4 first, ... never above the ceiling."""
        pause = self.first
        while True:
            yield min(pause, self.ceiling)
            pause *= 2


async def pause_unless_stopped(stop: asyncio.Event, seconds: float) -> None:
    """Wait ``seconds``, or less if ``stop`` is set meanwhile."""
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except asyncio.TimeoutError:
        pass
