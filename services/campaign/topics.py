"""The worker's topics: its co-partitioned inputs and what it writes."""

from __future__ import annotations

from dataclasses import dataclass

import faust

from shared.topics import (
    CAMPAIGN_ACTIONS,
    TAGGED_INPUTS,
    TopicSpec,
    dead_letter_topic,
    worker_topics,
)

from .settings import CampaignSettings


def worker_owned_topics(settings: CampaignSettings) -> list[TopicSpec]:
    return worker_topics(
        settings.campaign_app_id, "journeys", ("handovers", "ticks"), settings.topic_partitions
    )


@dataclass(frozen=True)
class CampaignTopics:
    inputs: faust.TopicT
    actions: str
    handovers: str
    ticks: str
    changelog: str
    dead_letters: dict[str, str]


def campaign_topics(app: faust.App, settings: CampaignSettings) -> CampaignTopics:
    app_id = settings.campaign_app_id
    handovers, ticks = f"{app_id}-handovers", f"{app_id}-ticks"
    inputs = (TAGGED_INPUTS, handovers, ticks)
    return CampaignTopics(
        inputs=app.topic(*inputs, key_serializer="raw", value_serializer="raw"),
        actions=CAMPAIGN_ACTIONS,
        handovers=handovers,
        ticks=ticks,
        changelog=f"{app_id}-journeys-changelog",
        dead_letters={name: dead_letter_topic(name) for name in inputs},
    )
