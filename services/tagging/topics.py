"""The worker's topics: its four co-partitioned inputs and what it writes."""

from __future__ import annotations

from dataclasses import dataclass

import faust

from shared.topics import (
    IDENTITY_MERGES,
    INTENT_SCORES,
    PROFILE_TAGS,
    TOUCHPOINT_EVENTS,
    TopicSpec,
    dead_letter_topic,
)

from .settings import TaggingSettings


def handovers_topic_name(settings: TaggingSettings) -> str:
    return f"{settings.tagging_app_id}-handovers"


def changelog_topic_name(settings: TaggingSettings) -> str:
    return f"{settings.tagging_app_id}-profiles-changelog"


def worker_owned_topics(settings: TaggingSettings) -> list[TopicSpec]:
    """Created before Faust starts: a broker that auto-creates topics on first mention (Tansu
    does) would otherwise pick its own partition count, and keys would land off their partition."""
    partitions = settings.topic_partitions
    return [
        TopicSpec(handovers_topic_name(settings), partitions),
        TopicSpec(dead_letter_topic(handovers_topic_name(settings)), 1),
        TopicSpec(changelog_topic_name(settings), partitions, (("cleanup.policy", "compact"),)),
    ]


@dataclass(frozen=True)
class TaggingTopics:
    inputs: faust.TopicT  # events, scores, merges and handovers: one stream, all keyed by customer
    changes: str
    handovers: str
    changelog: str
    dead_letters: dict[str, str]  # input topic -> its .dlq


def tagging_topics(app: faust.App, settings: TaggingSettings) -> TaggingTopics:
    handovers = handovers_topic_name(settings)
    inputs = (TOUCHPOINT_EVENTS, INTENT_SCORES, IDENTITY_MERGES, handovers)
    return TaggingTopics(
        inputs=app.topic(*inputs, key_serializer="raw", value_serializer="raw"),
        changes=PROFILE_TAGS,
        handovers=handovers,
        changelog=changelog_topic_name(settings),
        dead_letters={name: dead_letter_topic(name) for name in inputs},
    )
