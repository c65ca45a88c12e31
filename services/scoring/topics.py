"""The worker's topics: its three co-partitioned inputs and what it writes."""

from __future__ import annotations

from dataclasses import dataclass

import faust

from shared.topics import (
    INTENT_SCORES,
    TOUCHPOINT_EVENTS,
    TopicSpec,
    dead_letter_topic,
    worker_topics,
)

from .settings import ScoringSettings


def worker_owned_topics(settings: ScoringSettings) -> list[TopicSpec]:
    return worker_topics(
        settings.scoring_app_id, "customers", ("handovers", "ticks"), settings.topic_partitions
    )


@dataclass(frozen=True)
class ScoringTopics:
    inputs: faust.TopicT  # events (merges among them), handovers and ticks: all keyed by customer
    scores: str
    handovers: str
    ticks: str
    changelog: str
    dead_letters: dict[str, str]  # input topic -> its .dlq


def scoring_topics(app: faust.App, settings: ScoringSettings) -> ScoringTopics:
    handovers, ticks = f"{settings.scoring_app_id}-handovers", f"{settings.scoring_app_id}-ticks"
    inputs = (TOUCHPOINT_EVENTS, handovers, ticks)
    return ScoringTopics(
        inputs=app.topic(*inputs, key_serializer="raw", value_serializer="raw"),
        scores=INTENT_SCORES,
        handovers=handovers,
        ticks=ticks,
        changelog=f"{settings.scoring_app_id}-customers-changelog",
        dead_letters={name: dead_letter_topic(name) for name in inputs},
    )
