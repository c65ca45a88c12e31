"""Erasure of customers from the campaign service's Redis state (services/campaign/erasure.py),
against a real Redis on a database of its own (12), flushed first.

Two customers' state is written the way the worker writes it (agents.Campaigner: the journey
decides, the desk assigns dealers, read_model.write_batch records the rest; the lead pool's timer
releases waiting leads), then one is erased: nothing in the database names them or their actions
any more, the other is untouched, the desk counts right, the figures keep their counts, and
erasing again changes nothing."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest
from redis.asyncio import Redis

from services.campaign.batch import merge_journeys
from services.campaign.consent_view import read_consent
from services.campaign.daily import china_date, day_key, expires_at, read_daily_actions
from services.campaign.dealers import Consultant, Roster, Store
from services.campaign.definitions import ActionKind, Campaign
from services.campaign.desk import Lead, LeadRecord, assign_leads, lead_counts, list_leads, release_pool
from services.campaign.erasure import erase_customers
from services.campaign.inputs import CampaignEvent
from services.campaign.journey import PROGRAMME, Context, Journey, new_journey, on_event
from services.campaign.read_model import (
    DUE,
    action_records,
    campaign_figures,
    customer_actions,
    handover_action,
    write_batch,
)
from services.campaign.store import CAMPAIGNS, load_campaigns
from services.campaign.targeting import CHINA
from shared.audit import SYSTEM
from tests.factories import read_event
from tests.sweeps import Fact, naming, redis_facts

pytestmark = pytest.mark.integration
ERASURE_DB = 12  # apart from the other tests' databases (0, 5, 6, 7, 9, 10, 11)
# 14:00 today in China: every input of the test falls in the day, out of quiet hours, and the
# day's figures (kept 35 days) do not expire as they are written.
NOW = datetime.combine(datetime.now(CHINA).date(), time(6, 0), UTC)
TRIGGER = "custom.erasure_check"  # messages, the holdout, a cooldown
HOT = "custom.erasure_hot"  # a lead for the dealer desk
STORE = Store(id="wuhan-1", city="wuhan", brand="demo")

DEFINITIONS: list[dict[str, Any]] = [
    {  # A/B variants: `entered:{variant}`, `sent:{variant}`, the programme's `treated`
        "id": "welcome",
        "name": "welcome message",
        "trigger": {"on": "event", "value": TRIGGER},
        "action": {
            "kind": "send_content",
            "channel": "wecom_1v1",
            "variants": [
                {"name": "a", "weight": 50, "content": {"default": "c-welcome-a"}},
                {"name": "b", "weight": 50, "content": {"default": "c-welcome-b"}},
            ],
        },
    },
    {  # every customer held out: `entered:holdout`, lift's baseline
        "id": "measured",
        "name": "measured only",
        "trigger": {"on": "event", "value": TRIGGER},
        "action": {"kind": "send_content", "channel": "sms", "content": {"default": "c-sms"}},
        "holdout_pct": 100,
    },
    {  # a lead for the dealer desk, every time
        "id": "hot-lead",
        "name": "hot lead to a consultant",
        "trigger": {"on": "event", "value": HOT},
        "action": {"kind": "assign_dealer", "channel": "dealer", "sla_hours": 24},
        "reentry": "always",
        "frequency_cap": {"per_customer_per_day": 5},
    },
    {  # a step due in two days: the customer's due time
        "id": "cooldown",
        "name": "recall after a cooldown",
        "trigger": {"on": "event", "value": TRIGGER, "delay_hours": 48},
        "action": {"kind": "send_content", "channel": "app_push", "content": {"default": "c-recall"}},
        "exit_on_conversion": False,
    },
]


@pytest.fixture
async def redis(backends: Any) -> AsyncIterator[Redis]:
    url, replaced = re.subn(r"/0$", f"/{ERASURE_DB}", backends.redis_url)
    assert replaced == 1, backends.redis_url
    client = Redis.from_url(url)
    await client.flushdb()
    yield client
    await client.aclose()


def new_customer() -> str:
    return f"cus_{uuid.uuid4().hex}"


def team(*consultants: tuple[str, int], inactive: str | None = None) -> Roster:
    return Roster.of(
        [STORE],
        [
            Consultant(id=name, store_id=STORE.id, daily_capacity=capacity, active=name != inactive)
            for name, capacity in consultants
        ],
    )


def said(customer_id: str, kind: str, at: datetime, **properties: Any) -> CampaignEvent:
    return read_event(CampaignEvent, kind, at, customer_id, **properties)


async def define_campaigns(redis: Redis) -> list[Campaign]:
    """The campaigns, created as the API creates them (with their audit entries)."""
    for definition in DEFINITIONS:
        document = Campaign.model_validate(definition).model_dump_json()
        await CAMPAIGNS.change(redis, "create", definition["id"], document, editor=SYSTEM)
    return (await load_campaigns(redis))[1]


async def worker_takes(
    redis: Redis, campaigns: list[Campaign], roster: Roster, journey: Journey, event: CampaignEvent
) -> Journey:
    """What the campaign worker writes for one input of a customer (agents.Campaigner.react):
    the journey decides, the desk assigns the dealer leads (a lead nobody can take waits in the
    pool, `deferred` as `lead_pool`), then the read model takes the batch's actions, conversions,
    next due time and changed consents."""
    context = Context(campaigns, event.received_at)
    reaction = on_event(journey, event, context)
    after = reaction.journey
    leads = [
        Lead(d.action_id, d.customer_id, d.campaign_id, after.dealer_id, after.city, 24.0)
        for d in reaction.decisions
        if d.kind is ActionKind.assign_dealer and d.outcome == "sent"
    ]
    consultants = await assign_leads(redis, roster, leads, context.now)
    records = action_records(reaction.decisions, consultants)
    customer_id = journey.view.customer_id
    changed = after.view.consents != journey.view.consents
    consents = {customer_id: after.view.consents} if changed else {}
    await write_batch(redis, records, reaction.conversions, {customer_id: after.next_due}, consents)
    return after


async def pool_timer_releases(redis: Redis, roster: Roster, now: datetime) -> list[LeadRecord]:
    """The lead pool's timer (agents.Campaigner.release_leads) up to the point where it confirms
    the leads' actions: released leads, their actions recorded, still in `leads:released` (as
    after a crash before the broker acknowledged them)."""
    released = await release_pool(redis, roster, now)
    records = [handover_action(lead, now) for lead in released]
    await write_batch(redis, records, [], {}, {})
    return released


def in_figures(fact: Fact) -> bool:
    """Whether the fact is a member of a figure kept as a set (a campaign's, a day's)."""
    key, kind = fact[:2]
    figure = re.fullmatch(rb"pd:campaign:(stats:.+|daily:\d{4}-\d{2}-\d{2}):.+", key)
    return kind == b"set" and figure is not None and not key.endswith(b":figures")


async def test_an_erased_customer_leaves_nothing_and_the_other_is_untouched(redis: Redis) -> None:
    campaigns = await define_campaigns(redis)
    erased, kept = new_customer(), new_customer()
    desk = team(("k1", 1))
    yesterday = NOW - timedelta(days=1)

    # Yesterday both consent to WeCom messages and become hot leads: the kept customer's goes to
    # k1, the erased customer's waits in the pool (k1 is full for the day).
    journeys = {c: new_journey(c) for c in (kept, erased)}
    for customer_id in (kept, erased):
        consent = said(customer_id, "consent.granted", yesterday - timedelta(hours=3), channel="wecom_1v1")
        journeys[customer_id] = await worker_takes(redis, campaigns, desk, journeys[customer_id], consent)
    for customer_id, hours in ((kept, 2), (erased, 1)):
        hot = said(customer_id, HOT, yesterday - timedelta(hours=hours))
        journeys[customer_id] = await worker_takes(redis, campaigns, desk, journeys[customer_id], hot)
    # Today k1 has room again: the waiting lead is theirs, its action (recorded today, in place of
    # yesterday's deferral) not yet confirmed sent. Both trigger the other campaigns; the erased
    # customer's next lead waits in the pool; both visit a store (a conversion).
    (released,) = await pool_timer_releases(redis, desk, NOW - timedelta(minutes=40))
    assert (released.customer_id, released.consultant_id) == (erased, "k1")
    for customer_id in (kept, erased):
        trigger = said(customer_id, TRIGGER, NOW - timedelta(minutes=30))
        journeys[customer_id] = await worker_takes(redis, campaigns, desk, journeys[customer_id], trigger)
    hot = said(erased, HOT, NOW - timedelta(minutes=20))
    journeys[erased] = await worker_takes(redis, campaigns, desk, journeys[erased], hot)
    for customer_id in (kept, erased):
        visit = said(customer_id, "store.visit", NOW - timedelta(minutes=10), dealer_id=STORE.id)
        journeys[customer_id] = await worker_takes(redis, campaigns, desk, journeys[customer_id], visit)

    erased_actions = {a.action_id for a in await customer_actions(redis, erased)}
    kept_actions = await customer_actions(redis, kept)
    kept_consent = await read_consent(redis, kept)
    kept_due = await redis.zscore(DUE, kept)
    assert kept_due is not None and await redis.zscore(DUE, erased) is not None
    assert (await read_consent(redis, erased)).channels["wecom_1v1"].granted
    # The kept customer's lead is past its SLA (the worker would hand it on at its tick).
    assert await lead_counts(redis, NOW) == {"pool": 1, "open": 2, "overdue": 1}
    held = await list_leads(redis, "open", NOW, consultant_id="k1")
    assert sorted(lead.customer_id for lead in held) == sorted([kept, erased])
    figures = {c: await campaign_figures(redis, c) for c in (*(d["id"] for d in DEFINITIONS), PROGRAMME)}
    assert figures["measured"] == {"entered:holdout": 2, "suppressed:holdout": 2, "triggered": 2}
    assert figures["hot-lead"] == {
        "converted:default": 1,  # the erased customer's last touch before the visit
        "deferred": 2,
        "entered:default": 2,
        "sent:default": 2,
        "triggered": 3,
    }
    assert figures[PROGRAMME] == {"entered:treated": 2, "converted:treated": 2}
    days = {day: await read_daily_actions(redis, day) for day in (china_date(yesterday), china_date(NOW))}
    waited = day_key(china_date(yesterday), "hot-lead:deferred")  # the erased customer's lead alone
    assert await redis.scard(waited) == 1
    before = await redis_facts(redis)
    assert len(naming(before, [erased])) > 10 and naming(before, erased_actions)

    await erase_customers(redis, [erased])

    after = await redis_facts(redis)
    assert naming(after, [erased, *erased_actions]) == set()
    # Nothing but the erased customer went: every fact taken away named them or their actions;
    # the facts added are the stand-ins that took their place in the figures' sets, one each,
    # all different. The other customer's facts are all there, and the desk's loads of the day,
    # SLA misses and handovers.
    taken, added = before - after, after - before
    assert all(naming([fact], [erased, *erased_actions]) for fact in taken)
    assert added and all(in_figures(fact) and fact[2].startswith(b"erased:") for fact in added)
    assert len(added) == len([fact for fact in taken if in_figures(fact)])
    assert len({fact[2] for fact in added}) == len(added)
    kept_action_ids = [a.action_id for a in kept_actions]
    assert naming(before, [kept, *kept_action_ids]) <= after
    assert await customer_actions(redis, kept) == kept_actions
    assert await read_consent(redis, kept) == kept_consent
    assert await redis.zscore(DUE, kept) == kept_due
    assert await customer_actions(redis, erased) == []
    assert not (await read_consent(redis, erased)).channels["wecom_1v1"].granted

    # The desk: the erased customer's open and waiting leads are closed, k1 holds the kept
    # customer's alone, and no release hands an erased customer's lead on, even with room.
    assert await lead_counts(redis, NOW) == {"pool": 0, "open": 1, "overdue": 1}
    (held_after,) = await list_leads(redis, "open", NOW, consultant_id="k1")
    assert held_after.customer_id == kept
    assert await list_leads(redis, "pool", NOW) == []

    # The figures keep their counts (stats, lift, the days' actions), and a day's keys their expiry.
    assert {c: await campaign_figures(redis, c) for c in figures} == figures
    assert {day: await read_daily_actions(redis, day) for day in days} == days
    assert await redis.expiretime(waited) == expires_at(china_date(yesterday))

    # Idempotent: again, or for a customer never seen, or for nobody, nothing changes.
    await erase_customers(redis, [erased])
    await erase_customers(redis, [new_customer(), erased])
    await erase_customers(redis, [])
    assert await redis_facts(redis) == after
    assert await pool_timer_releases(redis, team(("k1", 9), ("k2", 9)), NOW) == []


async def test_a_survivors_conversion_in_a_campaign_deleted_since_goes_too(redis: Redis) -> None:
    """Two customers found to be one person: the survivor converts on a touch of the merged
    customer's, in a campaign that the survivor has no action of and that ops deleted since."""
    campaigns = await define_campaigns(redis)
    merged, survivor = new_customer(), new_customer()
    desk = team(("k1", 5))
    journey = new_journey(merged)
    for event in (
        said(merged, "consent.granted", NOW - timedelta(hours=2), channel="wecom_1v1"),
        said(merged, TRIGGER, NOW - timedelta(hours=1)),
        said(merged, HOT, NOW - timedelta(hours=1)),
    ):
        journey = await worker_takes(redis, campaigns, desk, journey, event)
    together = merge_journeys(new_journey(survivor), journey)
    visit = said(survivor, "store.visit", NOW - timedelta(minutes=10), dealer_id=STORE.id)
    await worker_takes(redis, campaigns, desk, together, visit)
    assert {a.campaign_id for a in await customer_actions(redis, survivor)} == set()
    figures = await campaign_figures(redis, "welcome")
    assert sum(n for f, n in figures.items() if f.startswith("converted:")) == 1
    await CAMPAIGNS.change(redis, "delete", "welcome", editor=SYSTEM)
    before = await redis_facts(redis)
    assert naming(before, [survivor])

    await erase_customers(redis, [survivor])

    after = await redis_facts(redis)
    assert naming(after, [survivor]) == set()
    assert naming(before, [merged]) <= after
    assert await campaign_figures(redis, "welcome") == figures


async def test_a_lead_handed_on_under_a_new_action_id_goes_with_its_customer(redis: Redis) -> None:
    campaigns = await define_campaigns(redis)
    erased = new_customer()
    hot = said(erased, HOT, NOW - timedelta(hours=1))
    await worker_takes(redis, campaigns, team(("k1", 1)), new_journey(erased), hot)
    # k1 leaves: their lead goes back to the pool under a new action id, which none of the
    # customer's actions knows yet (it is announced when the lead is released again).
    assert await release_pool(redis, team(("k1", 1), inactive="k1"), NOW) == []
    (waiting,) = await list_leads(redis, "pool", NOW)
    assert waiting.customer_id == erased
    assert waiting.action_id not in {a.action_id for a in await customer_actions(redis, erased)}

    await erase_customers(redis, [erased])

    assert naming(await redis_facts(redis), [erased, waiting.action_id]) == set()
    assert await lead_counts(redis, NOW) == {"pool": 0, "open": 0, "overdue": 0}
    assert await release_pool(redis, team(("k2", 5)), NOW) == []
