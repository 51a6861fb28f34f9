#!/bin/bash
# One-shot: create the nirstream topics (idempotent). Used by the `kafka-init` compose service;
# against your own cluster: docker compose run --rm --no-deps kafka-init
#   env KAFKA_BOOTSTRAP (default kafka:9092), KAFKA_CLIENT_CONFIG (optional client.properties
#   with security.protocol / sasl.jaas.config / ssl.truststore.location, mounted at runtime),
#   TOPIC_REPLICATION (default 1; use 3 on a production cluster).
set -euo pipefail
bootstrap="${KAFKA_BOOTSTRAP:-kafka:9092}"
replication="${TOPIC_REPLICATION:-1}"
config=()
if [ -n "${KAFKA_CLIENT_CONFIG:-}" ]; then config=(--command-config "$KAFKA_CLIENT_CONFIG"); fi
# topic:partitions. Spectra, reference and lab-join must have the same count (the lab join relies on it).
for spec in nirstream.spectra:4 nirstream.predictions:4 nirstream.deadletter:1 nirstream.models:1 \
            nirstream.reference:4 nirstream.labelled:4 nirstream.lab-join:4; do
  topic="${spec%%:*}"
  topic_config=()
  # the worker's lab-join changelog: the last record per sample id, nothing older than join_retention_seconds (6 h)
  if [ "$topic" = nirstream.lab-join ]; then
    topic_config=(--config cleanup.policy=compact,delete --config retention.ms=21600000)
  fi
  /opt/kafka/bin/kafka-topics.sh --bootstrap-server "$bootstrap" "${config[@]}" --create --if-not-exists \
    --topic "$topic" --partitions "${spec##*:}" --replication-factor "$replication" "${topic_config[@]}"
done
/opt/kafka/bin/kafka-topics.sh --bootstrap-server "$bootstrap" "${config[@]}" --list
