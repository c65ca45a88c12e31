from __future__ import annotations

from collections import Counter

from prometheus_client import CollectorRegistry, Gauge, Histogram
from prometheus_client import Counter as CounterMetric

from shared.events import EVENT_TYPES, Source
from shared.metrics import LATENCY_BUCKETS


class IngestMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.events = CounterMetric(
            "pd_ingest_events",
            "Events received, by source, type and outcome "
            "(accepted, duplicate, invalid, forbidden, unavailable)",
            ["source", "type", "outcome"],
            registry=registry,
        )
        self.count_failures = CounterMetric(
            "pd_ingest_event_count_failures",
            "Groups of accepted events that could not be counted per minute (the events were "
            "accepted all the same; GET /v1/stats/events undercounts)",
            registry=registry,
        )
        self.identity_conflicts = CounterMetric(
            "pd_ingest_identity_conflicts",
            "Events accepted without (all) the links they named: merge_limit (merging their owners "
            "would pass the day's merges or a type's limit), identifier_limit (a type at its limit)",
            ["reason"],
            registry=registry,
        )
        self.contents_version = Gauge(
            "pd_ingest_contents_version",
            "Version of the content catalogue ingest applies to events naming only a content_id",
            registry=registry,
        )
        self.request_seconds = Histogram(
            "pd_ingest_request_seconds",
            "Time to answer an ingest request",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )

    def count_all(self, outcomes: list[tuple[object, object, str]]) -> None:
        """Count (source, type, outcome) triples; one increment per distinct label set."""
        # Labelled first: a rejected event's source or type may be anything JSON holds (a list).
        labelled = Counter(
            (_source_label(source), _type_label(event_type), outcome)
            for source, event_type, outcome in outcomes
        )
        for (source, event_type, outcome), n in labelled.items():
            self.events.labels(source, event_type, outcome).inc(n)


# Labels stay bounded whatever a client sends: unknown values collapse into one label.
_SOURCES = {s.value for s in Source}


def _source_label(source: object) -> str:
    return source if isinstance(source, str) and source in _SOURCES else "unknown"


def _type_label(event_type: object) -> str:
    if isinstance(event_type, str):
        if event_type in EVENT_TYPES:
            return event_type
        if event_type.startswith("custom."):
            return "custom"
    return "unknown"
