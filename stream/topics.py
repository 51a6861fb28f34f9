"""Create nirstream's topics (idempotent: existing topics are left as they are)."""

from __future__ import annotations

import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from stream.settings import Settings

log = logging.getLogger(__name__)


def topic_plan(settings: Settings) -> dict[str, int]:
    """Topic name -> partitions. Per-analyzer topics get the spectra partition count."""
    t, n = settings.topics, settings.spectra_partitions
    return {t.spectra: n, t.predictions: n, t.deadletter: 1, t.models: 1, t.reference: n, t.labelled: n}


async def ensure_topics(settings: Settings) -> None:
    admin = AIOKafkaAdminClient(**settings.kafka_client_options())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [NewTopic(name, partitions, 1) for name, partitions in topic_plan(settings).items() if name not in existing]
        if missing:
            await admin.create_topics(missing)
            log.info("created topics %s", [t.name for t in missing])
    finally:
        await admin.close()
