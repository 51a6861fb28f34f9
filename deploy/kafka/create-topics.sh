#!/bin/bash
# One-shot: create the nirstream topics (idempotent). Used by the `kafka-init` compose service;
# against your own cluster: docker compose run --rm --no-deps kafka-init
# Reads the same NIRSTREAM_* variables as nirstream (README: Configuration), so the topics it creates are the
# ones the commands use:
#   NIRSTREAM_TOPICS__SPECTRA, __PREDICTIONS, __DEADLETTER, __MODELS, __REFERENCE, __LABELLED, __LAB_JOIN (names)
#   NIRSTREAM_SPECTRA_PARTITIONS (default 4), NIRSTREAM_JOIN_RETENTION_SECONDS (default 21600, whole seconds)
#   NIRSTREAM_REPLICATION_FACTOR (default 3), NIRSTREAM_MIN_INSYNC_REPLICAS (default 2)
#   KAFKA_BOOTSTRAP (default kafka:9092), KAFKA_CLIENT_CONFIG (optional client.properties with security.protocol /
#   sasl.jaas.config / ssl.truststore.location, mounted at runtime), KAFKA_TOPICS_BIN (default
#   /opt/kafka/bin/kafka-topics.sh).
set -euo pipefail
bootstrap="${KAFKA_BOOTSTRAP:-kafka:9092}"
kafka_topics="${KAFKA_TOPICS_BIN:-/opt/kafka/bin/kafka-topics.sh}"
replication="${NIRSTREAM_REPLICATION_FACTOR:-3}"
min_insync="${NIRSTREAM_MIN_INSYNC_REPLICAS:-2}"
partitions="${NIRSTREAM_SPECTRA_PARTITIONS:-4}"
retention_seconds="${NIRSTREAM_JOIN_RETENTION_SECONDS:-21600}"
retention_ms=$(( ${retention_seconds%.*} * 1000 ))
if (( min_insync > replication )); then
  echo "min.insync.replicas ($min_insync) above the replication factor ($replication): no write could succeed" >&2
  exit 2
fi
config=()
if [ -n "${KAFKA_CLIENT_CONFIG:-}" ]; then config=(--command-config "$KAFKA_CLIENT_CONFIG"); fi
lab_join="${NIRSTREAM_TOPICS__LAB_JOIN:-nirstream.lab-join}"
# name partitions. Spectra, reference and lab-join must have the same count (the lab join relies on it).
topics=(
  "${NIRSTREAM_TOPICS__SPECTRA:-nirstream.spectra} $partitions"
  "${NIRSTREAM_TOPICS__PREDICTIONS:-nirstream.predictions} $partitions"
  "${NIRSTREAM_TOPICS__DEADLETTER:-nirstream.deadletter} 1"
  "${NIRSTREAM_TOPICS__MODELS:-nirstream.models} 1"
  "${NIRSTREAM_TOPICS__REFERENCE:-nirstream.reference} $partitions"
  "${NIRSTREAM_TOPICS__LABELLED:-nirstream.labelled} $partitions"
  "$lab_join $partitions"
)
for spec in "${topics[@]}"; do
  topic="${spec% *}"
  topic_config=(--config "min.insync.replicas=$min_insync")
  # the worker's lab-join changelog: the last record per sample id, nothing older than the join's retention
  if [ "$topic" = "$lab_join" ]; then
    topic_config+=(--config cleanup.policy=compact,delete --config "retention.ms=$retention_ms")
  fi
  "$kafka_topics" --bootstrap-server "$bootstrap" "${config[@]}" --create --if-not-exists \
    --topic "$topic" --partitions "${spec##* }" --replication-factor "$replication" "${topic_config[@]}"
done
"$kafka_topics" --bootstrap-server "$bootstrap" "${config[@]}" --list
