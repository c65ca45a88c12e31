"""The worker's topics: its three co-partitioned inputs and what it writes."""

from __future__ import annotations

from dataclasses import dataclass

import faust

from shared.topics import (
    IDENTITY_MERGES,
    INTENT_SCORES,
    TOUCHPOINT_EVENTS,
    TopicSpec,
    dead_letter_topic,
)

from .settings import ScoringSettings


def handovers_topic_name(settings: ScoringSettings) -> str:
    return f"{settings.scoring_app_id}-handovers"


def changelog_topic_name(settings: ScoringSettings) -> str:
    return f"{settings.scoring_app_id}-customers-changelog"


def worker_owned_topics(settings: ScoringSettings) -> list[TopicSpec]:
    """Created before Faust starts: a broker that auto-creates topics on first mention (Tansu
    does) would otherwise pick its own partition count, and keys would land off their partition."""
    partitions = settings.topic_partitions
    return [
        TopicSpec(handovers_topic_name(settings), partitions),
        TopicSpec(dead_letter_topic(handovers_topic_name(settings)), 1),
        TopicSpec(changelog_topic_name(settings), partitions, (("cleanup.policy", "compact"),)),
    ]


@dataclass(frozen=True)
class ScoringTopics:
    inputs: faust.TopicT  # events, merges and handovers: one stream, all keyed by customer
    scores: str
    handovers: str
    changelog: str
    dead_letters: dict[str, str]  # input topic -> its .dlq


def scoring_topics(app: faust.App, settings: ScoringSettings) -> ScoringTopics:
    handovers = handovers_topic_name(settings)
    inputs = (TOUCHPOINT_EVENTS, IDENTITY_MERGES, handovers)
    return ScoringTopics(
        inputs=app.topic(*inputs, key_serializer="raw", value_serializer="raw"),
        scores=INTENT_SCORES,
        handovers=handovers,
        changelog=changelog_topic_name(settings),
        dead_letters={name: dead_letter_topic(name) for name in inputs},
    )
