"""The dealer desk against a real Redis (desk.py): leads assigned in one transaction, the lead
pool, SLA misses, consultants who leave, follow-ups. Time is injected: `now` is an argument.
A Redis database of its own (10), flushed first: the session's campaign worker pools leads in
database 0, and a release here must see only this test's leads."""

from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio import Redis

from services.campaign.dealers import Consultant, Roster, Store
from services.campaign.desk import (
    Lead,
    assign_leads,
    close_leads,
    confirm_released,
    handovers,
    lead_counts,
    list_leads,
    moved_action_id,
    release_pool,
    sla_misses,
)
from tests.factories import unique

pytestmark = pytest.mark.integration
NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)  # 10:00 in China
NEXT_DAY = NOW + timedelta(days=1)


@pytest.fixture
async def redis(backends):
    client = Redis.from_url(backends.redis_url.rsplit("/", 1)[0] + "/10")
    await client.flushdb()
    yield client
    await client.aclose()


def roster(store: str, capacity: int, *names: str, inactive: tuple[str, ...] = ()) -> Roster:
    return Roster.of(
        [Store(id=store, city="wuhan", brand="demo")],
        [
            Consultant(id=f"{store}-{n}", store_id=store, daily_capacity=capacity, active=n not in inactive)
            for n in names
        ],
    )


def lead(store: str, customer: str | None = None, **changes: object) -> Lead:
    fields = dict(
        action_id=unique("act"),
        customer_id=customer or unique("cus"),
        campaign_id="hot-lead",
        store_id=store,
        city="wuhan",
        sla_hours=24.0,
    )
    return Lead(**(fields | changes))  # type: ignore[arg-type]


async def test_a_batch_of_leads_goes_round_robin_within_capacity_and_replays_the_same(redis) -> None:
    store = unique("dlr")
    team = roster(store, 1, "a", "b")
    leads = [lead(store) for _ in range(3)]
    first = await assign_leads(redis, team, leads, NOW)
    assert [first[x.action_id] for x in leads] == [f"{store}-a", f"{store}-b", None]
    # A replay of the batch (a worker restarted before acking it) gets the same answers.
    assert await assign_leads(redis, team, leads, NOW) == first
    assert await lead_counts(redis, NOW) == {"pool": 1, "open": 2, "overdue": 0}
    (waiting,) = await list_leads(redis, "pool", NOW)
    assert waiting.action_id == leads[2].action_id and waiting.consultant_id is None
    opened = await list_leads(redis, "open", NOW, store_id=store)
    assert {x.consultant_id for x in opened} == {f"{store}-a", f"{store}-b"}
    assert all(x.sla_due == NOW + timedelta(hours=24) for x in opened)
    assert await lead_counts(redis, NOW + timedelta(hours=25)) == {"pool": 1, "open": 2, "overdue": 2}


async def test_a_lead_for_a_full_store_waits_in_the_pool_and_is_assigned_the_next_day(redis) -> None:
    store = unique("dlr")
    team = roster(store, 1, "a")
    taken, waiting = lead(store), lead(store)
    assert await assign_leads(redis, team, [taken, waiting], NOW) == {
        taken.action_id: f"{store}-a",
        waiting.action_id: None,
    }
    assert await release_pool(redis, team, NOW + timedelta(hours=3)) == []  # still today: still full
    (released,) = await release_pool(redis, team, NEXT_DAY)
    assert (released.action_id, released.consultant_id, released.state) == (
        waiting.action_id,
        f"{store}-a",
        "open",
    )
    assert [h.reason for h in released.handovers] == ["assigned", "from_pool"]
    assert released.handovers[0].consultant_id is None  # it went to the pool first
    # Until the worker confirms the action is on its topic, a release (after a crash) returns it
    # again, with the same action id and consultant; then never again.
    (again,) = await release_pool(redis, team, NEXT_DAY)
    assert (again.action_id, again.consultant_id) == (waiting.action_id, f"{store}-a")
    await confirm_released(redis, [waiting.action_id])
    assert await release_pool(redis, team, NEXT_DAY) == []
    assert await lead_counts(redis, NEXT_DAY) == {"pool": 0, "open": 2, "overdue": 0}


async def test_a_consultant_added_takes_the_waiting_leads_up_to_their_capacity(redis) -> None:
    store = unique("dlr")
    waiting = [lead(store) for _ in range(3)]
    for seconds, one in enumerate(waiting):
        assert await assign_leads(redis, roster(store, 1), [one], NOW + timedelta(seconds=seconds)) == {
            one.action_id: None
        }
    released = await release_pool(redis, roster(store, 2, "new"), NOW)
    assert [x.action_id for x in released] == [x.action_id for x in waiting[:2]]  # oldest first
    assert [x.action_id for x in await list_leads(redis, "pool", NOW)] == [waiting[2].action_id]


async def test_a_reassigned_lead_skips_the_consultant_who_missed_and_counts_the_miss(redis) -> None:
    store = unique("dlr")
    team = roster(store, 5, "a", "b")
    first = lead(store)
    assert (await assign_leads(redis, team, [first], NOW))[first.action_id] == f"{store}-a"
    again = lead(store, first.customer_id, replaces=first.action_id, missed=f"{store}-a")
    later = NOW + timedelta(hours=24)
    assert await assign_leads(redis, team, [again], later) == {again.action_id: f"{store}-b"}
    assert (await sla_misses(redis))[f"{store}-a"] == 1
    (open_lead,) = await list_leads(redis, "open", later, store_id=store)  # the first one is closed
    assert open_lead.action_id == again.action_id and open_lead.excluded == [f"{store}-a"]
    assert [(h.consultant_id, h.reason) for h in open_lead.handovers] == [
        (f"{store}-a", "assigned"),
        (f"{store}-b", "sla_missed"),
    ]
    assert (await handovers(redis))[f"{store}-b"] == 1


async def test_an_inactive_consultants_open_leads_go_to_a_colleague_as_new_actions(redis) -> None:
    store = unique("dlr")
    leads = [lead(store) for _ in range(2)]
    chosen = await assign_leads(redis, roster(store, 5, "a", "b"), leads, NOW)
    of_a = next(x for x in leads if chosen[x.action_id] == f"{store}-a")
    released = await release_pool(redis, roster(store, 5, "a", "b", inactive=("a",)), NOW)
    (moved,) = released
    assert moved.action_id == moved_action_id(of_a.action_id, f"{store}-a") != of_a.action_id
    assert (moved.consultant_id, moved.customer_id) == (f"{store}-b", of_a.customer_id)
    assert [h.reason for h in moved.handovers] == ["assigned", "consultant_inactive", "from_pool"]
    assert await list_leads(redis, "open", NOW, consultant_id=f"{store}-a") == []
    assert len(await list_leads(redis, "open", NOW, consultant_id=f"{store}-b")) == 2


async def test_a_follow_up_closes_the_customers_leads(redis) -> None:
    store = unique("dlr")
    mine, other = lead(store), lead(store)
    await assign_leads(redis, roster(store, 5, "a"), [mine, other], NOW)
    await close_leads(redis, [mine.customer_id])
    assert [x.action_id for x in await list_leads(redis, "open", NOW)] == [other.action_id]
