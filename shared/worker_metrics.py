"""The metrics every stream worker exposes (docs/contract.md names), in a registry passed in."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from shared.metrics import LATENCY_BUCKETS


class WorkerMetrics:
    def __init__(self, service: str, registry: CollectorRegistry) -> None:
        self.service = service
        self.processed = Counter(
            "pd_events_processed",
            "Inputs a worker took, by outcome (processed, duplicate, dead_lettered, ...)",
            ["service", "outcome"],
            registry=registry,
        )
        self.batch_seconds = Histogram(
            "pd_worker_batch_seconds",
            "Time to process one batch of inputs, effects written",
            ["service"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.event_seconds = Histogram(
            "pd_event_processing_seconds",
            "From ingest's received_at to the effect of the event written",
            ["service"],
            buckets=(*LATENCY_BUCKETS, 30, 60, 300),
            registry=registry,
        )
        self.gaps = Counter(
            "pd_input_gap_offsets",
            "Input offsets skipped between two delivered records (should stay 0: inputs are not compacted)",
            ["service", "topic"],
            registry=registry,
        )
        self.lag = Gauge(
            "pd_consumer_lag",
            "Messages behind the end of the partition",
            ["service", "topic", "partition"],
            registry=registry,
        )

        # Series that exist from the start, so that rate() and increase() see their first step.
        for outcome in ("processed", "duplicate", "dead_lettered"):
            self.processed.labels(service, outcome)

    def count(self, outcomes: Mapping[str, int]) -> None:
        for outcome, n in outcomes.items():
            self.processed.labels(self.service, outcome).inc(n)

    def set_lag(self, topic: str, partition: int, lag: int) -> None:
        self.lag.labels(self.service, topic, str(partition)).set(max(lag, 0))
