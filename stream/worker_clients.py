"""The worker's Kafka clients, set up from its settings (connection and security: ``kafka_client_options``)."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.coordinator.assignors.range import RangePartitionAssignor

from nirstream.stream.settings import Settings


def batch_producer(settings: Settings) -> AIOKafkaProducer:
    """Predictions, dead letters, labelled pairs and the lab-join changelog: acks from every in-sync replica,
    idempotent where the broker supports it (``Settings.durability``)."""
    return AIOKafkaProducer(**settings.kafka_producer_options(), linger_ms=2, max_request_size=4 * settings.max_message_bytes)


def batch_consumer(settings: Settings) -> AIOKafkaConsumer:
    """Spectra and lab values in the worker group; offsets committed by the worker after each batch is published."""
    return AIOKafkaConsumer(
        **settings.kafka_client_options(),
        group_id=settings.group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=settings.session_timeout_ms,
        heartbeat_interval_ms=settings.heartbeat_interval_ms,
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
        max_partition_fetch_bytes=max(1 << 20, 2 * settings.max_message_bytes),
        fetch_max_bytes=max(50 << 20, 2 * settings.max_message_bytes),
        partition_assignment_strategy=(RangePartitionAssignor,),  # partition p of both topics to the same worker
    )
