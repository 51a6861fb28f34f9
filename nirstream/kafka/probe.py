"""Is the broker reachable? A metadata round trip on a started client's connection."""

from __future__ import annotations

import asyncio

from aiokafka.errors import KafkaError


async def broker_reachable(client, timeout: float = 2.0) -> bool:
    """``client``: an ``AIOKafkaClient`` (a started producer's or consumer's ``.client``)."""
    try:
        await asyncio.wait_for(client.fetch_all_metadata(), timeout=timeout)
        return True
    except (KafkaError, OSError, asyncio.TimeoutError):
        return False
