"""Create nirstream's topics (idempotent: existing topics are left as they are)."""

from __future__ import annotations

import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from nirstream.stream.settings import Settings

log = logging.getLogger(__name__)


def topic_plan(settings: Settings) -> dict[str, int]:
    """Topic name -> partitions. Per-analyzer topics get the spectra partition count, and so does the lab-join
    changelog: its partition p holds the join state of spectra/reference partition p."""
    t, n = settings.topics, settings.spectra_partitions
    return {t.spectra: n, t.predictions: n, t.deadletter: 1, t.models: 1, t.reference: n, t.labelled: n, t.lab_join: n}


def topic_configs(settings: Settings) -> dict[str, dict[str, str]]:
    """Topic name -> configs set at creation. Every topic: ``min.insync.replicas`` (with the producers' acks=all, a
    write is acknowledged once that many replicas have it). The lab-join changelog is compacted (the last record
    per sample id is all a restore needs) and deletes what is older than the join's retention, which the worker
    would drop anyway. (The embedded broker ignores all three; a restore skips expired entries itself.)"""
    durable = {"min.insync.replicas": str(settings.durability().min_insync_replicas)}
    retention_ms = str(int(settings.join_retention_seconds * 1000))
    configs = {name: dict(durable) for name in topic_plan(settings)}
    configs[settings.topics.lab_join].update({"cleanup.policy": "compact,delete", "retention.ms": retention_ms})
    return configs


async def ensure_topics(settings: Settings) -> None:
    admin = AIOKafkaAdminClient(**settings.kafka_client_options())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        plan, configs, t = topic_plan(settings), topic_configs(settings), settings.topics
        if t.lab_join not in existing and t.spectra in existing:
            # partition p of the changelog keeps the state of spectra partition p: match the spectra topic as it is
            [spectra] = await admin.describe_topics([t.spectra])
            plan[t.lab_join] = len(spectra["partitions"])
        replicas = settings.durability().replication_factor
        missing = [NewTopic(name, partitions, replicas, topic_configs=configs[name])
                   for name, partitions in plan.items() if name not in existing]
        if missing:
            await admin.create_topics(missing)
            log.info("created topics %s (replication factor %d)", [t.name for t in missing], replicas)
    finally:
        await admin.close()
