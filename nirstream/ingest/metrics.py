"""The file bridge's Prometheus metrics (``nirstream_ingest_*``), one registry per bridge; served on
``--metrics-port`` (``/metrics``, ``/health``, ``/ready``) when one is given."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from nirstream.core.errors import RejectReason


class BridgeMetrics:
    def __init__(self, analyzer_id: str) -> None:
        self.registry = CollectorRegistry()
        r, labels = self.registry, {"analyzer": analyzer_id}
        self.published = Counter("nirstream_ingest_files_published_total", "Files the broker acknowledged",
                                 ["analyzer"], registry=r).labels(**labels)
        self._rejected = Counter("nirstream_ingest_files_rejected_total", "Files moved to rejected/, by reason",
                                 ["analyzer", "reason"], registry=r)
        self.waiting = Gauge("nirstream_ingest_files_waiting", "Files in the folder not yet published or rejected "
                             "(the backlog: grows while the broker is away or a file stays locked)",
                             ["analyzer"], registry=r).labels(**labels)
        self.last_published = Gauge("nirstream_ingest_last_published_timestamp_seconds",
                                    "Unix time of the last acknowledged file (0: none since the start)",
                                    ["analyzer"], registry=r).labels(**labels)
        self.analyzer_id = analyzer_id
        # every reason at 0 from the start, so increase() sees the first rejection
        for reason in {*(reason.value for reason in RejectReason), "unreadable", "refused_by_broker"}:
            self.rejected(reason)

    def rejected(self, reason: str):
        return self._rejected.labels(analyzer=self.analyzer_id, reason=reason)
