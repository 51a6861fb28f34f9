"""The trainer service's Prometheus metrics (``nirstream_trainer_*``), one registry per service."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class TrainerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.pairs_archived = Counter("nirstream_trainer_pairs_archived_total", "Labelled pairs new to the plant store",
                                      registry=r)
        self.pairs_repeated = Counter("nirstream_trainer_pairs_repeated_total",
                                      "Labelled pairs whose message id was stored already (replays)", registry=r)
        self.pairs_refused = Counter("nirstream_trainer_pairs_refused_total",
                                     "Messages on the labelled topic kept out of the store", ["reason"], registry=r)
        self.pairs_stored = Gauge("nirstream_trainer_pairs_stored", "Labelled pairs in the plant store", registry=r)
        self.retrains = Counter("nirstream_trainer_retrains_total", "Retrains by outcome: started, succeeded, failed",
                                ["outcome"], registry=r)
        self.decisions = Counter("nirstream_trainer_gate_decisions_total",
                                 "Time-forward gate decisions: promoted, proposed, rejected", ["decision"], registry=r)
        self.rejected_in_a_row = Gauge("nirstream_trainer_candidates_rejected_in_a_row",
                                       "Candidates rejected since the last one that passed", registry=r)
        self.last_retrain_seconds = Gauge("nirstream_trainer_last_retrain_seconds", "Duration of the last retrain",
                                          registry=r)
        self.gate_rmsep = Gauge("nirstream_trainer_gate_rmsep", "RMSEP on the newest held-out pairs at the last gate",
                                ["model", "target"], registry=r)
        self.rollbacks = Counter("nirstream_trainer_rollbacks_total", "Automatic rollbacks by the promotion guard",
                                 registry=r)
        self.bias_corrections = Counter("nirstream_trainer_bias_corrections_total",
                                        "Slope/bias corrections: published, not_helpful, proposed", ["outcome"], registry=r)
        self.retrain_running = Gauge("nirstream_trainer_retrain_running", "1 while a retrain child runs", registry=r)
        # Every outcome and decision exists at 0 from the start: increase() then sees the first failure
        # (an alert) and the dashboard's panels have series before the first retrain.
        for outcome in ("started", "succeeded", "failed"):
            self.retrains.labels(outcome)
        for decision in ("promoted", "proposed", "rejected"):
            self.decisions.labels(decision)
        for outcome in ("published", "not_helpful", "proposed"):
            self.bias_corrections.labels(outcome)
