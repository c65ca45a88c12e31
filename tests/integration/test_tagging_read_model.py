"""The tagging read model against a real Redis: segment sets follow what Redis holds, so a
replay that reaches a state in fewer batches than the first run still leaves nothing stale."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from redis.asyncio import Redis

from services.tagging import read_model
from services.tagging.batch import ProfileRecord
from services.tagging.profile import Profile
from services.tagging.rules import Layer, Orientation
from tests.factories import unique

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


@pytest.fixture
async def redis(backends):
    client = Redis.from_url(backends.redis_url)
    yield client
    await client.aclose()


async def members(redis: Redis, dimension: str, value: str) -> set[str]:
    return {m.decode() for m in await redis.smembers(read_model.segment_key(dimension, value))}


async def test_a_state_lost_from_the_table_leaves_no_segment_behind(redis: Redis) -> None:
    customer = unique("cus")
    plain = ProfileRecord(Profile(customer_id=customer, orientation=Orientation.rational))
    tagged = ProfileRecord(replace(plain.profile, layer=Layer.intent, tags=("ripple",)))
    await read_model.write_records(redis, {customer: plain}, NOW)
    # A batch wrote this, then the worker died before its changelog: the table still says `plain`.
    await read_model.write_records(redis, {customer: tagged}, NOW)
    assert customer in await members(redis, "tag", "ripple")
    # The replay reaches `plain` again in one batch (say, the tag came and went within it).
    await read_model.write_records(redis, {customer: plain}, NOW)
    assert customer not in await members(redis, "tag", "ripple")
    assert customer not in await members(redis, "layer", "intent")
    assert customer in await members(redis, "layer", "prospect")
    assert (await read_model.read_profile(redis, customer)).tags == []


async def test_a_merged_away_customer_leaves_every_segment(redis: Redis) -> None:
    customer, survivor = unique("cus"), unique("cus")
    tagged = ProfileRecord(Profile(customer_id=customer, layer=Layer.owner, tags=("ripple", "rfm:loyal")))
    await read_model.write_records(redis, {customer: tagged}, NOW)
    gone = ProfileRecord(Profile(customer_id=customer), merged_into=survivor)
    await read_model.write_records(redis, {customer: gone}, NOW)
    for dimension, value in (("tag", "ripple"), ("tag", "rfm:loyal"), ("layer", "owner")):
        assert customer not in await members(redis, dimension, value)
    assert customer.encode() not in await redis.smembers(read_model.ALL)
