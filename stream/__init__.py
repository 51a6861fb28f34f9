"""The stream worker: micro-batched EMSC + CNN inference from Kafka (docs/worker.md)."""
