"""The one Kafka layer: client options, publishing with retry, reading topics."""
