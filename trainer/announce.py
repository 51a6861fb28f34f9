"""Tell running workers about a new champion on the models topic. No TensorFlow: ``nirstream models`` uses it."""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)


def announce(bootstrap_servers: str, topic: str, version: str, registry: Path, reason: str, client_options: dict | None = None,
             event_type: str = "promoted") -> None:
    """Tell running workers about a new champion or transfer (they also poll the registry, so this is best effort)."""
    import asyncio

    from aiokafka import AIOKafkaProducer

    from nirstream.core.messages.model_event import encode_model_event
    from nirstream.core.settings import SharedSettings

    async def send() -> None:
        options = client_options or SharedSettings.load(bootstrap_servers=bootstrap_servers).kafka_producer_options()
        producer = AIOKafkaProducer(**options)
        await producer.start()
        try:
            await producer.send_and_wait(topic, encode_model_event(event_type, version, str(registry), reason))
        finally:
            await producer.stop()

    try:
        asyncio.run(asyncio.wait_for(send(), 15))
    except Exception as exc:  # the registry is the truth; workers poll it anyway
        log.warning("could not announce version %s on %s (%s); workers will find it by polling", version, topic, exc)
