"""Prometheus metrics of the worker: one ``nirstream_`` prefix, base units, ``_total`` counters."""

from __future__ import annotations

import time
from collections import Counter as Tally
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from nirstream.stream.opcua_server import ProcessValueServer
    from nirstream.stream.prediction_feed import PredictionFeed
    from nirstream.core.artifacts.bundle import PredictionIntervals
    from nirstream.stream.batch_processing import BatchResult
    from nirstream.stream.lab_join import LabJoinResult
    from nirstream.stream.lab_join_store import OnlineMonitor

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# trust refusals (docs/security.md) first: the alert NirstreamUntrustedModel watches these
TRUST_REFUSAL_REASONS = ("unsigned", "untrusted_key", "bad_signature", "pointer_version", "audit")
SWAP_FAILURE_REASONS = (*TRUST_REFUSAL_REASONS, "verification", "load", "grid_mismatch", "champion_pointer")
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)


class WorkerMetrics:
    """All worker metrics on one registry (a fresh one per worker keeps tests independent)."""

    def __init__(self, registry: CollectorRegistry | None = None, max_analyzer_labels: int = 100):
        self.registry = registry or CollectorRegistry()
        self._analyzers: set[str] = set()
        self._max_analyzers = max_analyzer_labels
        r = self.registry

        # the stream: what came in, what went out, how long it took
        self.spectra_received = Counter("nirstream_spectra_received_total", "Messages read from the spectra topic", registry=r)
        self.predictions = Counter("nirstream_predictions_total", "Predictions published", ["analyzer"], registry=r)
        self.dead_letters = Counter("nirstream_dead_letters_total", "Messages sent to the dead-letter topic", ["reason"], registry=r)
        self.outliers = Counter("nirstream_outliers_total", "Predictions flagged outside the applicability domain", ["analyzer", "flag"], registry=r)
        self.batch_size = Histogram("nirstream_batch_size", "Spectra per model call", buckets=BATCH_BUCKETS, registry=r)
        self.preprocess_seconds = Histogram("nirstream_preprocess_seconds", "Decode, validation and EMSC per batch", buckets=LATENCY_BUCKETS, registry=r)
        self.inference_seconds = Histogram("nirstream_inference_seconds", "Model call per batch", buckets=LATENCY_BUCKETS, registry=r)
        self.batch_seconds = Histogram("nirstream_batch_seconds", "Whole batch: decode to offsets committed", buckets=LATENCY_BUCKETS, registry=r)
        self.end_to_end_seconds = Histogram("nirstream_end_to_end_latency_seconds", "Analyzer timestamp to prediction acknowledged", buckets=LATENCY_BUCKETS, registry=r)
        self.isolations = Counter("nirstream_batch_isolations_total", "Failed model calls split to isolate the spectra causing them", registry=r)
        self.last_prediction = Gauge("nirstream_last_prediction", "Last predicted value", ["analyzer", "target"], registry=r)
        self.last_prediction_timestamp = Gauge("nirstream_last_prediction_timestamp_seconds", "Unix time of the last prediction", ["analyzer"], registry=r)

        # the serving model and its swaps
        self.model_info = Gauge("nirstream_model_info", "The model serving now (value 1)", ["version", "target"], registry=r)
        self.interval_half_width = Gauge("nirstream_model_interval_half_width", "Serving model's prediction-interval "
                                         "half-width (prediction ± this covers the lab value with probability coverage)",
                                         ["target", "coverage"], registry=r)
        self.model_version = Gauge("nirstream_model_version", "Numeric version of the serving model", registry=r)
        self.model_created = Gauge("nirstream_model_created_timestamp_seconds", "When the serving model's bundle was created", registry=r)
        self.model_swaps = Counter("nirstream_model_swaps_total", "Successful hot swaps", registry=r)
        self.model_swap_failures = Counter("nirstream_model_swap_failures_total", "Bundles refused on load", ["reason"], registry=r)

        # Kafka: readiness, lag, publishing and commits
        self.ready = Gauge("nirstream_ready", "1 when the worker has a model and a broker connection", registry=r)
        self.consumer_lag = Gauge("nirstream_consumer_lag", "Messages behind the partition end", ["topic", "partition"], registry=r)
        self.publish_retries = Counter("nirstream_publish_retries_total", "Messages re-sent after a retriable publish error", registry=r)
        self.unpublishable = Counter("nirstream_unpublishable_total", "Messages the broker refused for good (replaced by a dead letter)", ["topic"], registry=r)
        self.commit_failures = Counter("nirstream_commit_failures_total", "Offset commits that failed (batch will replay)", registry=r)
        self.dead_letters_lost = Counter("nirstream_dead_letters_lost_total", "Dead letters standing in for an "
                                         "unpublishable message that the broker refused too: in no topic, only the log", registry=r)

        # the lab join
        self.reference_values = Counter("nirstream_reference_values_total", "Lab reference values received", registry=r)
        self.reference_pairs = Counter("nirstream_reference_pairs_total", "Predictions joined with a lab value", ["analyzer"], registry=r)
        self.rolling_rmsep = Gauge("nirstream_rolling_rmsep", "RMSEP of the last joined predictions vs lab", ["analyzer", "target"], registry=r)
        self.rolling_bias = Gauge("nirstream_rolling_bias", "Mean of predicted minus lab over the last joined pairs", ["analyzer", "target"], registry=r)
        self.outlier_fraction = Gauge("nirstream_outlier_fraction", "Fraction of the last predictions flagged warning or outlier", ["analyzer"], registry=r)
        self.join_restored = Counter("nirstream_join_restored_total", "Lab-join entries (waiting predictions and lab values, "
                                     "joined sample ids) restored from the changelog on partition assignment", registry=r)

        # Every reason exists from the start at 0, so rate() and increase() see the first event.
        from nirstream.core.errors import RejectReason

        for reason in RejectReason:
            self.dead_letters.labels(reason=reason.value)
        for reason in SWAP_FAILURE_REASONS:
            self.model_swap_failures.labels(reason=reason)

    def analyzer_label(self, analyzer_id: str) -> str:
        """Keep the label set bounded: analyzers beyond the limit share the label 'other'."""
        if analyzer_id in self._analyzers:
            return analyzer_id
        if len(self._analyzers) < self._max_analyzers:
            self._analyzers.add(analyzer_id)
            return analyzer_id
        return "other"

    def set_model(self, version: str, targets: tuple[str, ...], created_at: float | None = None,
                  intervals: PredictionIntervals | None = None) -> None:
        """One ``model_info`` series per target the serving model predicts, and its interval half-widths."""
        self.model_info.clear()
        self.interval_half_width.clear()
        if created_at is not None:
            self.model_created.set(created_at)
        for target in targets:
            self.model_info.labels(version=version, target=target).set(1)
            if intervals is not None:
                self.interval_half_width.labels(target=target, coverage=f"{intervals.coverage:g}").set(intervals.half_width[target])
        if version.isdigit():
            self.model_version.set(int(version))

    def observe_batch(self, n_records: int, predicted: BatchResult, joined: LabJoinResult, batch_seconds: float,
                      targets: tuple[str, ...]) -> None:
        """Count what one published batch did: received, predicted, flagged, dead-lettered, timings."""
        self.spectra_received.inc(n_records)
        self.batch_seconds.observe(batch_seconds)
        self.isolations.inc(predicted.isolations)
        self.reference_values.inc(joined.references_accepted)
        for reason, count in (predicted.reasons + joined.reasons).items():
            self.dead_letters.labels(reason=reason).inc(count)
        if not predicted.predictions:
            return
        self.batch_size.observe(len(predicted.predictions))
        self.preprocess_seconds.observe(predicted.preprocess_seconds)
        self.inference_seconds.observe(predicted.inference_seconds)
        now = time.time()
        for latency in now - predicted.spectrum_times:
            self.end_to_end_seconds.observe(max(latency, 0.0))
        labels = [self.analyzer_label(a) for a in predicted.analyzers]
        for label, count in Tally(labels).items():
            self.predictions.labels(analyzer=label).inc(count)
        for (label, flag), count in Tally(zip(labels, predicted.flags, strict=True)).items():
            if flag != "ok":
                self.outliers.labels(analyzer=label, flag=flag).inc(count)
        last_index = {label: i for i, label in enumerate(labels)}
        for label, i in last_index.items():
            for target, value in zip(targets, predicted.values[i], strict=True):
                self.last_prediction.labels(analyzer=label, target=target).set(float(value))
            self.last_prediction_timestamp.labels(analyzer=label).set(now)

    def observe_lab_join(self, joined: LabJoinResult, monitor: OnlineMonitor) -> None:
        """Joined pairs per analyzer, and the rolling RMSEP and bias per target and outlier fraction they move."""
        touched = set()
        for key, _ in joined.labelled:
            analyzer = key.decode()
            self.reference_pairs.labels(analyzer=self.analyzer_label(analyzer)).inc()
            touched.add(analyzer)
        for analyzer, stats in monitor.stats.items():
            label = self.analyzer_label(analyzer)
            self.outlier_fraction.labels(analyzer=label).set(stats.outlier_fraction)
            if analyzer in touched:
                for target in stats.errors:
                    self.rolling_rmsep.labels(analyzer=label, target=target).set(stats.rmsep(target))
                    self.rolling_bias.labels(analyzer=label, target=target).set(stats.bias(target))


class OpcUaMetrics(Collector):
    """``nirstream opcua``'s metrics (``nirstream_opcua_*``), read at each scrape from the counts the server and the
    feed keep anyway (one count of each event, where it happens)."""

    def __init__(self, server: ProcessValueServer, feed: PredictionFeed, ready: Callable[[], bool]):
        self.server, self.feed, self.ready = server, feed, ready
        self.registry = CollectorRegistry()
        self.registry.register(self)

    def collect(self) -> Iterator:
        server, feed = self.server, self.feed
        yield GaugeMetricFamily("nirstream_opcua_ready", "1 when the server listens and the feed knows its offsets",
                                value=1 if self.ready() else 0)
        yield CounterMetricFamily("nirstream_opcua_records_received", "Records read from the predictions topic",
                                  value=feed.received)
        yield CounterMetricFamily("nirstream_opcua_bad_messages", "Records skipped: not a prediction with finite numbers",
                                  value=feed.bad_messages)
        yield CounterMetricFamily("nirstream_opcua_updates", "Outputs written (one per target of a prediction)",
                                  value=server.updates)
        yield CounterMetricFamily("nirstream_opcua_publish_failures", "Predictions whose values could not be written",
                                  value=feed.handler_failures)
        skipped = CounterMetricFamily("nirstream_opcua_skipped_values", "Values not written, by reason", labels=["reason"])
        for reason, count in (("older", server.skipped_older), ("future", server.skipped_future),
                              ("address_space_full", server.skipped_outputs)):
            skipped.add_metric([reason], count)
        yield skipped
        yield GaugeMetricFamily("nirstream_opcua_outputs", "Analyzer/target outputs in the address space",
                                value=len(server.outputs))
        yield GaugeMetricFamily("nirstream_opcua_stale_outputs", "Outputs Bad: no prediction within stale_seconds",
                                value=server.stale_outputs)
        yield GaugeMetricFamily("nirstream_opcua_last_prediction_timestamp_seconds",
                                "Unix time the last valid prediction was read (0: none yet)",
                                value=feed.last_prediction_at or 0.0)
