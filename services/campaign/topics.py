"""The worker's topics: its co-partitioned inputs and what it writes."""

from __future__ import annotations

from dataclasses import dataclass

import faust

from shared.topics import (
    CAMPAIGN_ACTIONS,
    IDENTITY_MERGES,
    INTENT_SCORES,
    PROFILE_TAGS,
    TOUCHPOINT_EVENTS,
    TopicSpec,
    dead_letter_topic,
)

from .settings import CampaignSettings


def own_topic(settings: CampaignSettings, name: str) -> str:
    return f"{settings.campaign_app_id}-{name}"


def worker_owned_topics(settings: CampaignSettings) -> list[TopicSpec]:
    """Created before Faust starts, with the inputs' partition count (see scoring/topics.py)."""
    partitions = settings.topic_partitions
    specs = [
        TopicSpec(own_topic(settings, "journeys-changelog"), partitions, (("cleanup.policy", "compact"),))
    ]
    for name in ("handovers", "ticks"):
        specs += [
            TopicSpec(own_topic(settings, name), partitions),
            TopicSpec(dead_letter_topic(own_topic(settings, name)), 1),
        ]
    return specs


@dataclass(frozen=True)
class CampaignTopics:
    inputs: faust.TopicT
    actions: str
    handovers: str
    ticks: str
    changelog: str
    dead_letters: dict[str, str]


def campaign_topics(app: faust.App, settings: CampaignSettings) -> CampaignTopics:
    handovers, ticks = own_topic(settings, "handovers"), own_topic(settings, "ticks")
    inputs = (TOUCHPOINT_EVENTS, INTENT_SCORES, PROFILE_TAGS, IDENTITY_MERGES, handovers, ticks)
    return CampaignTopics(
        inputs=app.topic(*inputs, key_serializer="raw", value_serializer="raw"),
        actions=CAMPAIGN_ACTIONS,
        handovers=handovers,
        ticks=ticks,
        changelog=own_topic(settings, "journeys-changelog"),
        dead_letters={name: dead_letter_topic(name) for name in inputs},
    )
