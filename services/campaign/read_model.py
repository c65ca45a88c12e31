"""The campaign read model in Redis: what the worker writes and the API reads.

Keys (all under `pd:campaign:`):
- `customer:{id}:actions`  hash action id -> JSON `ActionRecord` (every action and suppression).
- `stats:{campaign}:{figure}` sets whose sizes are the campaign's figures: `triggered`,
  `sent:{group}`, `deferred`, `suppressed:{reason}` (action ids); `entered:{group}` and
  `converted:{group}` (customer ids, per group: a variant, `default`, or `holdout`).
- `stats:{campaign}:step:{step}:{figure}` a journey's per-step figures (journey_steps.py):
  `reached`, `then`, `otherwise`, `exited:{why}` (customer ids); `sent`, `deferred`,
  `suppressed:{reason}` (action ids).
- `stats:{campaign}:figures` set of the figure names the campaign has, so stats never scan.
- `due`  sorted set customer -> epoch seconds of their next scheduled item (the ticker reads it).
- `customer:{id}:consent` the customer's consents per channel (consent_view.py).
- `daily:{date}...` each campaign's actions per China day (daily.py).
- `funnel:{day}:campaign:{campaign}:{figure}`, `funnel:values:campaign` the campaigns' funnels by
  cohort (shared/funnels.py; read by the tagging API's `GET /v1/funnels?by=campaign`).
Every write sets state (HSET, SADD, SET, ZADD, ZREM, EXPIREAT): a replayed batch writes the same
state again.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from datetime import datetime

from pydantic import BaseModel, ConfigDict
from redis.asyncio import Redis

from shared.dataclass_replace import replace
from shared.distinct_counts import queue_distinct
from shared.funnels import FunnelTouch, group_names, touch_members
from shared.redis import KEY_PREFIX, indexed_set_sizes
from shared.ticks import schedule

from . import daily
from .consent_view import Consents, queue_consents
from .decide import HOLDOUT, Decision
from .definitions import ActionKind
from .desk import LeadRecord
from .journey import PROGRAMME, Conversion, programme_group

PREFIX = f"{KEY_PREFIX}campaign:"
DUE = f"{PREFIX}due"


def actions_key(customer_id: str) -> str:
    return f"{PREFIX}customer:{customer_id}:actions"


# Broadcast occurrences sent, per partition: "<tick id>|<partition>" -> when (agents.py).
BROADCASTS_SENT = f"{PREFIX}broadcasts:sent"


def stats_key(campaign_id: str, figure: str) -> str:
    return f"{PREFIX}stats:{campaign_id}:{figure}"


class ActionRecord(BaseModel):
    """An action or a suppression, as the API lists them and `campaign.actions.v1` carries actions."""

    model_config = ConfigDict(frozen=True)

    action_id: str
    campaign_id: str
    customer_id: str
    kind: str
    channel: str
    content_id: str | None
    variant: str | None
    outcome: str  # sent | deferred | suppressed
    reason: str | None
    at: datetime
    deliver_at: datetime | None = None
    points: int | None = None
    consultant_id: str | None = None  # assign_dealer
    step: str | None = None  # a journey's step that decided it
    group_template: str | None = None  # invite_group: the group's template
    schema_version: int = 1


def action_record(decision: Decision, consultant_id: str | None = None) -> ActionRecord:
    return ActionRecord(
        action_id=decision.action_id,
        campaign_id=decision.campaign_id,
        customer_id=decision.customer_id,
        kind=decision.kind.value,
        channel=decision.channel.value,
        content_id=decision.content_id,
        variant=decision.variant,
        outcome=decision.outcome,
        reason=decision.reason,
        at=decision.at,
        deliver_at=decision.deliver_at,
        points=decision.points,
        consultant_id=consultant_id,
        step=decision.step,
        group_template=decision.group_template,
    )


def action_records(
    decisions: Iterable[Decision], consultants: Mapping[str, str | None], closed: Collection[str] = ()
) -> list[ActionRecord]:
    """A batch's decisions as records, once the desk assigned its dealer leads (`consultants`, by
    action id: None for a lead waiting in the pool, `deferred` as `lead_pool`); a reassignment
    of a lead no longer open (`closed`) is suppressed as `lead_closed`."""
    records = []
    for decision in decisions:
        if decision.action_id in closed:
            records.append(action_record(replace(decision, outcome="suppressed", reason="lead_closed")))
        elif decision.action_id not in consultants:
            records.append(action_record(decision))
        elif (consultant := consultants[decision.action_id]) is None:
            records.append(action_record(replace(decision, outcome="deferred", reason="lead_pool")))
        else:
            records.append(action_record(decision, consultant))
    return records


def handover_action(lead: LeadRecord, now: datetime) -> ActionRecord:
    """The assign_dealer action that hands a lead from the pool to its consultant."""
    return ActionRecord(
        action_id=lead.action_id,
        campaign_id=lead.campaign_id,
        customer_id=lead.customer_id,
        kind=ActionKind.assign_dealer.value,
        channel="dealer",
        content_id=None,
        variant=None,
        outcome="sent",
        reason=None,
        at=now,
        consultant_id=lead.consultant_id,
    )


def group_of(variant: str | None) -> str:
    return variant or "default"


async def write_batch(
    redis: Redis,
    records: Iterable[ActionRecord],
    conversions: Iterable[Conversion],
    due: dict[str, datetime | None],
    consents: Mapping[str, Consents],
    journey_figures: Iterable[tuple[str, str, str]] = (),
    funnel: Iterable[FunnelTouch] = (),
) -> None:
    """Record a batch's actions, suppressions, conversions, next due times, the consents it
    changed (customer id -> their consents now) and journeys' figures ((campaign, figure,
    customer id)) and campaigns' funnel counts in one round trip."""
    records = list(records)
    pipe = redis.pipeline(transaction=False)
    figures: dict[str, set[str]] = {}
    # One command per key with all of the batch's members for it, not one per member: the
    # packing of each command was most of the campaign worker's Redis cost, and Redis's own.
    members: dict[str, list[str]] = {}
    actions: dict[str, dict[str, str]] = {}

    def add(campaign_id: str, figure: str, member: str) -> None:
        members.setdefault(stats_key(campaign_id, figure), []).append(member)
        figures.setdefault(campaign_id, set()).add(figure)

    for record in records:
        actions.setdefault(actions_key(record.customer_id), {})[record.action_id] = record.model_dump_json()
        add(record.campaign_id, "triggered", record.action_id)
        group = group_of(record.variant)
        outcome = f"suppressed:{record.reason}" if record.outcome == "suppressed" else record.outcome
        if record.step is not None:
            add(record.campaign_id, f"step:{record.step}:{outcome}", record.action_id)
        if record.outcome == "suppressed":
            add(record.campaign_id, outcome, record.action_id)
            if record.reason == "holdout":
                add(record.campaign_id, f"entered:{HOLDOUT}", record.customer_id)
        else:
            add(
                record.campaign_id,
                "deferred" if record.outcome == "deferred" else f"sent:{group}",
                record.action_id,
            )
            add(record.campaign_id, f"entered:{group}", record.customer_id)
        if (programme := programme_group(record.outcome, record.reason, record.channel)) is not None:
            add(PROGRAMME, f"entered:{programme}", record.customer_id)
    for campaign_id, figure, customer_id in journey_figures:
        add(campaign_id, figure, customer_id)
    for conversion in conversions:
        add(conversion.campaign_id, f"converted:{conversion.group}", conversion.customer_id)
    for key, mapping in actions.items():
        pipe.hset(key, mapping=mapping)
    for key, found in members.items():
        pipe.sadd(key, *found)
    for campaign_id, names in figures.items():
        pipe.sadd(stats_key(campaign_id, "figures"), *names)
    funnel = list(funnel)
    queue_distinct(pipe, touch_members(funnel), group_names(funnel))
    daily.queue_actions(pipe, records)
    queue_consents(pipe, consents)
    schedule(pipe, DUE, due)
    await pipe.execute()


async def customer_actions(redis: Redis, customer_id: str) -> list[ActionRecord]:
    raws = await redis.hvals(actions_key(customer_id))
    return sorted((ActionRecord.model_validate_json(r) for r in raws), key=lambda r: (r.at, r.action_id))


async def campaign_figures(redis: Redis, campaign_id: str) -> dict[str, int]:
    return await indexed_set_sizes(
        redis, stats_key(campaign_id, "figures"), lambda name: stats_key(campaign_id, name)
    )
