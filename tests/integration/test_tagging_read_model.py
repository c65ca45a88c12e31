"""The tagging read model against a real Redis: segment sets follow what Redis holds, so a
replay that reaches a state in fewer batches than the first run still leaves nothing stale;
band, activity and funnel-step sets are kept like the layer, orientation, stage and tag sets."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from redis.asyncio import Redis

from services.tagging import read_model
from services.tagging.batch import ProfileRecord
from services.tagging.funnel import FunnelStep
from services.tagging.profile import Profile
from services.tagging.rules import Layer, Orientation
from tests.factories import unique

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=5)


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


async def test_band_activity_and_funnel_steps_are_segments_a_customer_leaves_when_they_change(
    redis: Redis,
) -> None:
    customer = unique("cus")
    first = ProfileRecord(
        Profile(customer_id=customer, band="high", activity="active_7d", reached=(FunnelStep.friend_added,))
    )
    await read_model.write_records(redis, {customer: first}, NOW)
    assert customer in await members(redis, "band", "high")
    assert customer in await members(redis, "activity", "active_7d")
    assert customer in await members(redis, "reached", "friend_added")
    cooled = replace(first.profile, band="low", activity="dormant", reached=(FunnelStep.friend_added,))
    await read_model.write_records(redis, {customer: ProfileRecord(cooled)}, NOW)
    assert customer in await members(redis, "band", "low")
    assert customer not in await members(redis, "band", "high")
    assert customer in await members(redis, "activity", "dormant")
    assert customer not in await members(redis, "activity", "active_7d")
    assert customer in await members(redis, "reached", "friend_added")
    view = await read_model.read_profile(redis, customer)
    assert (view.band, view.activity, view.reached) == ("low", "dormant", [FunnelStep.friend_added])


async def test_a_replay_writes_the_same_state_again_and_a_lost_step_leaves_its_set(redis: Redis) -> None:
    customer = unique("cus")
    steps = (FunnelStep.lead, FunnelStep.order)
    record = ProfileRecord(Profile(customer_id=customer, band="hot", activity="active_30d", reached=steps))
    await read_model.write_records(redis, {customer: record}, NOW)
    written = await redis.get(read_model.profile_key(customer))
    sets = {(d, v): await members(redis, d, v) for d, values in read_model.DIMENSIONS.items() for v in values}
    # The same state again (a replay): nothing changes, not even the snapshot's write time.
    await read_model.write_records(redis, {customer: record}, LATER)
    assert await redis.get(read_model.profile_key(customer)) == written
    for (dimension, value), before in sets.items():
        assert (customer in await members(redis, dimension, value)) == (customer in before)
    # A batch lost from the table (the table never saw `order`): the replay takes it out again.
    earlier = ProfileRecord(replace(record.profile, reached=(FunnelStep.lead,)))
    await read_model.write_records(redis, {customer: earlier}, LATER)
    assert customer in await members(redis, "reached", "lead")
    assert customer not in await members(redis, "reached", "order")


async def test_no_band_yet_is_no_band_set_but_the_unscored_set(redis: Redis) -> None:
    customer = unique("cus")
    await read_model.write_records(redis, {customer: ProfileRecord(Profile(customer_id=customer))}, NOW)
    for dimension in ("band", "activity", "reached"):
        for value in read_model.DIMENSIONS[dimension]:
            assert customer not in await members(redis, dimension, value)
    assert customer in await members(redis, "layer", "prospect")
    # ... but in the sets of the unscored, which the first score takes them out of.
    assert customer in await members(redis, "unset", "band")
    assert customer in await members(redis, "unset", "activity")
    scored = replace(ProfileRecord(Profile(customer_id=customer)).profile, band="low", activity="active_7d")
    await read_model.write_records(redis, {customer: ProfileRecord(scored)}, LATER)
    assert customer not in await members(redis, "unset", "band")
    assert customer not in await members(redis, "unset", "activity")
    assert customer in await members(redis, "band", "low")


async def test_a_merged_away_customer_leaves_band_activity_and_funnel_sets(redis: Redis) -> None:
    customer, survivor = unique("cus"), unique("cus")
    scored = Profile(customer_id=customer, band="medium", activity="active_30d", reached=(FunnelStep.lead,))
    await read_model.write_records(redis, {customer: ProfileRecord(scored)}, NOW)
    gone = ProfileRecord(scored, merged_into=survivor)
    await read_model.write_records(redis, {customer: gone}, NOW)
    gone_from = [("band", "medium"), ("activity", "active_30d"), ("reached", "lead"), ("unset", "band")]
    for dimension, value in gone_from:
        assert customer not in await members(redis, dimension, value)


async def test_a_snapshot_from_before_band_and_funnel_sets_is_rewritten_at_the_next_write(
    redis: Redis,
) -> None:
    customer = unique("cus")
    profile = Profile(customer_id=customer, band="low", activity="dormant", intent_pct=12.0)
    # As the read model wrote it before: no `reached`, and in none of the band or activity sets.
    old = read_model.view_of(profile, NOW).model_dump(mode="json")
    del old["reached"]
    await redis.set(read_model.profile_key(customer), orjson.dumps(old))
    assert (await read_model.read_profile(redis, customer)).reached == []
    await read_model.write_records(redis, {customer: ProfileRecord(profile)}, LATER)
    assert customer in await members(redis, "band", "low")
    assert customer in await members(redis, "activity", "dormant")
    assert "reached" in orjson.loads(await redis.get(read_model.profile_key(customer)))


async def test_customers_written_before_the_scored_sets_are_backfilled_once(backends) -> None:
    # A database of its own: the backfill runs once per Redis, and the session's worker ran it.
    url, replaced = re.subn(r"/0$", "/4", backends.redis_url)
    assert replaced == 1, backends.redis_url
    redis = Redis.from_url(url)
    try:
        await redis.flushdb()
        old_ones = {}
        for band, activity in (("hot", "active_7d"), (None, None)):
            customer = unique("cus")
            profile = Profile(customer_id=customer, band=band, activity=activity, intent_pct=50.0)
            snapshot = read_model.view_of(profile, NOW).model_dump(mode="json")
            del snapshot["reached"]  # as the read model wrote it before
            await redis.set(read_model.profile_key(customer), orjson.dumps(snapshot))
            await redis.sadd(read_model.ALL, customer)
            old_ones[customer] = (band, activity)
        merged = unique("cus")
        await redis.set(read_model.profile_key(merged), orjson.dumps({"merged_into": "x", "updated_at": "t"}))
        await redis.sadd(read_model.ALL, merged)  # not really in seg:all, but must be left alone

        assert await read_model.backfill_scored_segments(redis) == 2
        for customer, (band, activity) in old_ones.items():
            if band is None:
                assert customer in await members(redis, "unset", "band")
                assert customer in await members(redis, "unset", "activity")
            else:
                assert customer in await members(redis, "band", band)
                assert customer in await members(redis, "activity", activity)
        assert merged not in await members(redis, "unset", "band")
        assert await read_model.backfill_scored_segments(redis) == 0  # once
    finally:
        await redis.flushdb()
        await redis.aclose()
