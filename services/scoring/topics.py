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
    scores: faust.TopicT
    handovers: faust.TopicT
    dead_letters: dict[str, faust.TopicT]  # input topic -> its .dlq

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(self.inputs.topics)


def scoring_topics(app: faust.App, settings: ScoringSettings) -> ScoringTopics:
    raw = {"key_serializer": "raw", "value_serializer": "raw"}
    handovers = handovers_topic_name(settings)
    inputs = (TOUCHPOINT_EVENTS, IDENTITY_MERGES, handovers)
    return ScoringTopics(
        inputs=app.topic(*inputs, **raw),
        scores=app.topic(INTENT_SCORES, **raw),
        # Internal: the worker creates it, with as many partitions as its inputs.
        handovers=app.topic(handovers, internal=True, partitions=settings.topic_partitions, **raw),
        dead_letters={name: app.topic(dead_letter_topic(name), **raw) for name in inputs},
    )
