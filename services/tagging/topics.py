"""The worker's topics: its two co-partitioned inputs and what it writes."""

from __future__ import annotations

from dataclasses import dataclass

import faust

from shared.topics import (
    PROFILE_TAGS,
    SCORED_INPUTS,
    TopicSpec,
    dead_letter_topic,
    worker_topics,
)

from .settings import TaggingSettings


def worker_owned_topics(settings: TaggingSettings) -> list[TopicSpec]:
    return worker_topics(settings.tagging_app_id, "profiles", ("handovers",), settings.topic_partitions)


@dataclass(frozen=True)
class TaggingTopics:
    inputs: faust.TopicT  # scored inputs (the chain) and handovers: all keyed by customer
    changes: str
    handovers: str
    changelog: str
    dead_letters: dict[str, str]  # input topic -> its .dlq


def tagging_topics(app: faust.App, settings: TaggingSettings) -> TaggingTopics:
    handovers = f"{settings.tagging_app_id}-handovers"
    inputs = (SCORED_INPUTS, handovers)
    return TaggingTopics(
        inputs=app.topic(*inputs, key_serializer="raw", value_serializer="raw"),
        changes=PROFILE_TAGS,
        handovers=handovers,
        changelog=f"{settings.tagging_app_id}-profiles-changelog",
        dead_letters={name: dead_letter_topic(name) for name in inputs},
    )
