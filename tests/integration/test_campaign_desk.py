"""The dealer desk against a real Redis: a batch of leads in one transaction (desk.assign_leads)."""

from datetime import UTC, datetime

import pytest
from redis.asyncio import Redis

from services.campaign.dealers import Consultant
from services.campaign.desk import Lead, assign_leads, sla_misses
from tests.factories import unique

NOW = datetime.now(UTC)


@pytest.fixture
async def redis(backends):
    client = Redis.from_url(backends.redis_url)
    yield client
    await client.aclose()


def roster(dealer: str, capacity: int) -> list[Consultant]:
    return [
        Consultant(id=f"{dealer}-{name}", dealer_id=dealer, city="Wuhan", daily_capacity=capacity)
        for name in ("a", "b")
    ]


async def test_a_batch_of_leads_goes_round_robin_within_capacity_and_replays_the_same(redis) -> None:
    dealer = unique("dlr")
    leads = [Lead(unique("act"), dealer, "Wuhan") for _ in range(3)]
    first = await assign_leads(redis, roster(dealer, capacity=1), leads, NOW)
    assert [first[lead.action_id] for lead in leads] == [f"{dealer}-a", f"{dealer}-b", None]
    # A replay of the batch (a worker restarted before acking it) gets the same answers,
    # and a later lead still finds everyone full.
    assert await assign_leads(redis, roster(dealer, capacity=1), leads, NOW) == first
    late = Lead(unique("act"), dealer, "Wuhan")
    assert await assign_leads(redis, roster(dealer, capacity=1), [late], NOW) == {late.action_id: None}


async def test_a_reassigned_lead_skips_the_consultant_who_missed_and_counts_the_miss(redis) -> None:
    dealer = unique("dlr")
    missed = f"{dealer}-a"
    lead = Lead(unique("act"), dealer, "Wuhan", missed=missed)
    chosen = await assign_leads(redis, roster(dealer, capacity=5), [lead], NOW)
    assert chosen == {lead.action_id: f"{dealer}-b"}
    assert (await sla_misses(redis))[missed] == 1
