"""Topic names from the design contract (`pd-topics`, in services/topics.py, creates them)."""

from __future__ import annotations

from dataclasses import dataclass

TOUCHPOINT_EVENTS = "touchpoint.events.v1"
IDENTITY_MERGES = "identity.merges.v1"
INTENT_SCORES = "intent.scores.v1"
PROFILE_TAGS = "profile.tags.v1"
CAMPAIGN_ACTIONS = "campaign.actions.v1"
# The enrichment chain (shared/chain.py): each input of a customer with the score, then the
# profile, it led to; what tagging and campaign read, in each customer's order.
SCORED_INPUTS = "scored.inputs.v1"
TAGGED_INPUTS = "tagged.inputs.v1"

MAIN_TOPICS = (
    TOUCHPOINT_EVENTS,
    IDENTITY_MERGES,
    INTENT_SCORES,
    PROFILE_TAGS,
    CAMPAIGN_ACTIONS,
    SCORED_INPUTS,
    TAGGED_INPUTS,
)


def dead_letter_topic(topic: str) -> str:
    """Where a worker puts messages of `topic` it cannot parse."""
    return f"{topic}.dlq"


@dataclass(frozen=True)
class TopicPolicy:
    """How topics are created: replication factor (-1: the broker's `default.replication.factor`)
    and `min.insync.replicas` (None: the broker's default). Producers write with acks=all, so a
    record acknowledged is on every in-sync replica, and with min.insync.replicas of 2 on at
    least two brokers."""

    replication_factor: int = -1
    min_insync_replicas: int | None = None


BROKER_DEFAULTS = TopicPolicy()


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: tuple[tuple[str, str], ...] = ()


def contract_topics(partitions: int) -> list[TopicSpec]:
    """Every topic the contract names, with its dead-letter topic (one partition is plenty)."""
    week_ms = str(7 * 24 * 3600 * 1000)
    specs = [TopicSpec(name, partitions, (("retention.ms", week_ms),)) for name in MAIN_TOPICS]
    specs += [TopicSpec(dead_letter_topic(name), 1) for name in MAIN_TOPICS]
    return specs


def worker_topics(app_id: str, table: str, inputs: tuple[str, ...], partitions: int) -> list[TopicSpec]:
    """A worker's own topics: `<app_id>-<input>` for each of its own inputs (handovers, ticks)
    with their dead letters, and its table's compacted changelog `<app_id>-<table>-changelog`.

    Created before Faust starts: a broker that auto-creates topics on first mention (Tansu does)
    would otherwise pick its own partition count, and keys would land off their partition."""
    specs = [TopicSpec(f"{app_id}-{table}-changelog", partitions, (("cleanup.policy", "compact"),))]
    for name in inputs:
        specs += [
            TopicSpec(f"{app_id}-{name}", partitions),
            TopicSpec(dead_letter_topic(f"{app_id}-{name}"), 1),
        ]
    return specs
