"""Identity resolution and dedupe against a real Redis (resolve.lua)."""

import asyncio
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from redis.asyncio import Redis

from services.ingest.broker import BrokerLink
from services.ingest.event_counts import MINUTE_TTL_S, minute_key
from services.ingest.identity_store import (
    Claim,
    IdentityLimits,
    IdentityStore,
    Resolution,
    SeenEvent,
    UnbindRefused,
)
from services.ingest.merge_relay import JoinRelay
from shared.topics import TOUCHPOINT_EVENTS, contract_topics
from tests.factories import unique
from tests.harness import eventually

NOW = datetime.now(UTC)
# Pending joins made at this time are not overdue for the ingest process's relay (it may run in
# the same session), so they stay until a test drops them.
LATER = NOW + timedelta(days=2)
GRACE_S = 30.0
# Marks made here count in a minute long past, away from the live ingest process's counts.
COUNTED_AT = datetime(2020, 1, 1, tzinfo=UTC)
# Limits that the resolution tests never reach; the limit tests set their own.
ROOMY = IdentityLimits(per_type={}, default=1000, merges_per_day=1000)
TIGHT = IdentityLimits(per_type={"unionid": 2}, default=5, merges_per_day=2)


@pytest.fixture
async def store(backends):
    redis = Redis.from_url(backends.redis_url)
    yield IdentityStore(redis, seen_ttl_s=8 * 24 * 3600, limits=ROOMY)
    await redis.aclose()


def ids(*names: str) -> list[str]:
    return [f"unionid:{name}" for name in names]


async def resolve_one(
    store: IdentityStore, identity_keys: list[str], event_id: str | None = None, now: datetime = NOW
) -> Resolution:
    [resolution] = await store.resolve([Claim(event_id or unique("e"), identity_keys)], now)
    return resolution


async def test_identifiers_seen_together_belong_to_one_customer(store) -> None:
    a, b = unique("a"), unique("b")
    first = await resolve_one(store, ids(a))
    second = await resolve_one(store, ids(a, b))
    third = await resolve_one(store, ids(b))
    assert first.customer_id == second.customer_id == third.customer_id
    assert not first.duplicate


async def test_linking_two_customers_merges_the_newer_into_the_older(store) -> None:
    a, b = unique("a"), unique("b")
    older = await resolve_one(store, ids(a))
    newer = await resolve_one(store, ids(b))
    assert older.customer_id != newer.customer_id
    linked = await resolve_one(store, ids(b, a))  # newer first: age decides, not order
    merge_id = f"{newer.customer_id}>{older.customer_id}"
    assert linked.customer_id == older.customer_id
    assert [(m.merge_id, m.identities) for m in linked.joins] == [(merge_id, {"unionid": [b]})]
    assert await store.lookup(f"unionid:{b}") == (older.customer_id, {"unionid": sorted([a, b])})

    pending = [merge for _, merge in await store.pending_merges(1000)]
    mine = [m for m in pending if m.merged_customer_id == newer.customer_id]
    assert [(m.survivor_customer_id, m.identities, m.merge_id) for m in mine] == [
        (older.customer_id, {"unionid": [b]}, merge_id)
    ]


async def test_a_seen_event_is_a_duplicate_of_the_survivor(store) -> None:
    a, b = unique("a"), unique("b")
    event_id = unique("e")
    older = await resolve_one(store, ids(b), event_id)
    await store.mark_seen([SeenEvent(event_id, older.customer_id, "wecom")], COUNTED_AT)
    newer = await resolve_one(store, ids(a))
    linked = await resolve_one(store, ids(a, b))
    again = await resolve_one(store, ids(b), event_id)
    assert again.duplicate
    assert again.customer_id == linked.customer_id == older.customer_id != newer.customer_id


def a_minute_of_its_own() -> datetime:
    """A minute no other test counts in (any minute of a few years back)."""
    return COUNTED_AT + timedelta(minutes=int(unique("m")[-6:], 16) % (3 * 365 * 24 * 60))


async def test_marking_events_seen_counts_each_new_one_once_per_source(store, backends) -> None:
    at = a_minute_of_its_own()
    a, b, c = unique("e"), unique("e"), unique("e")
    seen = [SeenEvent(a, "cus_1", "wecom"), SeenEvent(b, "cus_1", "app"), SeenEvent(c, "cus_2", "wecom")]
    assert await store.mark_seen(seen, at) is None
    # Marked again (the same events in a racing group, say), with one new: only that one counts.
    d = unique("e")
    assert await store.mark_seen([*seen, SeenEvent(d, "cus_3", "app")], at + timedelta(seconds=59)) is None
    async with Redis.from_url(backends.redis_url) as redis:
        assert await redis.hgetall(minute_key(at)) == {b"wecom": b"2", b"app": b"2"}
        assert 0 < await redis.ttl(minute_key(at)) <= MINUTE_TTL_S
        assert await redis.get(f"pd:seen:{d}") == b"cus_3"


async def test_a_failure_to_count_is_reported_and_the_events_are_marked_seen_all_the_same(
    store, backends
) -> None:
    at = a_minute_of_its_own()
    event_id = unique("e")
    async with Redis.from_url(backends.redis_url) as redis:
        await redis.set(minute_key(at), "not a hash", ex=60)
        failure = await store.mark_seen([SeenEvent(event_id, "cus_1", "wecom")], at)
        assert failure is not None and "WRONGTYPE" in failure
        assert await redis.get(f"pd:seen:{event_id}") == b"cus_1"


async def test_merged_away_customers_point_to_their_survivor_through_chains(store) -> None:
    a, b, c = unique("a"), unique("b"), unique("c")
    oldest = await resolve_one(store, ids(a))
    await resolve_one(store, ids(b))  # the middle customer
    event_id = unique("e")
    newest = await resolve_one(store, ids(c), event_id)
    await store.mark_seen([SeenEvent(event_id, newest.customer_id, "wecom")], COUNTED_AT)
    await resolve_one(store, ids(b, c))  # newest -> middle
    await resolve_one(store, ids(a, b))  # middle -> oldest
    again = await resolve_one(store, ids(c), event_id)
    assert again.customer_id == oldest.customer_id
    assert (await store.lookup(f"unionid:{c}"))[1] == {"unionid": sorted([a, b, c])}


async def test_racing_links_of_the_same_identifiers_make_one_customer(backends) -> None:
    # Many connections, each linking the same fresh pair in either order, all at once.
    clients = [Redis.from_url(backends.redis_url) for _ in range(8)]
    stores = [IdentityStore(client, 3600 * 24 * 8, ROOMY) for client in clients]
    try:
        for _ in range(20):
            a, b = unique("a"), unique("b")
            pairs = [ids(a, b) if i % 2 else ids(b, a) for i in range(len(stores))]
            results = await asyncio.gather(*(resolve_one(s, p) for s, p in zip(stores, pairs, strict=True)))
            assert len({resolution.customer_id for resolution in results}) == 1
    finally:
        for client in clients:
            await client.aclose()


async def test_unknown_identifier_is_not_found(store) -> None:
    assert await store.lookup(f"unionid:{unique('nobody')}") is None


async def test_a_merge_stays_pending_and_goes_with_the_survivors_next_event_until_dropped(store) -> None:
    a, b = unique("a"), unique("b")
    older = await resolve_one(store, ids(a), now=LATER)
    newer = await resolve_one(store, ids(b), now=LATER)
    linking = unique("e")
    linked = await resolve_one(store, ids(a, b), linking, now=LATER)
    merge_id = f"{newer.customer_id}>{older.customer_id}"
    assert [m.merge_id for m in linked.joins] == [merge_id]

    # Its produce failed, so nothing was dropped: the retry, which merges nothing now, carries
    # the merge again, as would any other event of the survivor.
    retry = await resolve_one(store, ids(a, b), linking, now=LATER)
    assert retry.joins == linked.joins
    other = await resolve_one(store, ids(b), now=LATER)
    assert (other.customer_id, other.joins) == (older.customer_id, linked.joins)

    await store.drop_joins([(older.customer_id, merge_id)])
    after = await resolve_one(store, ids(b), now=LATER)
    assert (after.customer_id, after.joins) == (older.customer_id, ())


async def test_only_the_first_event_of_a_batch_to_the_survivor_carries_its_merges(store) -> None:
    a, b = unique("a"), unique("b")
    older = await resolve_one(store, ids(a), now=LATER)
    newer = await resolve_one(store, ids(b), now=LATER)
    claims = [Claim(unique("e"), ids(a)), Claim(unique("e"), ids(a, b)), Claim(unique("e"), ids(b))]
    before, linked, after = await store.resolve(claims, LATER)
    assert before.joins == after.joins == ()
    assert [m.merge_id for m in linked.joins] == [f"{newer.customer_id}>{older.customer_id}"]
    await store.drop_joins([(older.customer_id, m.merge_id) for m in linked.joins])


async def test_a_pending_merge_of_a_customer_merged_away_goes_with_its_survivors_next_event(store) -> None:
    a, b, c = unique("a"), unique("b"), unique("c")
    oldest = await resolve_one(store, ids(a), now=LATER)
    middle = await resolve_one(store, ids(b), now=LATER)
    newest = await resolve_one(store, ids(c), now=LATER)
    await resolve_one(store, ids(b, c), now=LATER)  # newest -> middle, never dropped
    linked = await resolve_one(store, ids(a, b), now=LATER)  # middle -> oldest
    # In the order they happened: the middle customer takes the newest's state in, then hands over.
    first, second = f"{newest.customer_id}>{middle.customer_id}", f"{middle.customer_id}>{oldest.customer_id}"
    assert [m.merge_id for m in linked.joins] == [first, second]
    assert linked.joins[0].survivor_customer_id == middle.customer_id

    await store.drop_joins([(oldest.customer_id, m.merge_id) for m in linked.joins])
    assert (await resolve_one(store, ids(c), now=LATER)).joins == ()


async def test_a_merge_carried_earlier_in_the_batch_goes_again_when_its_survivor_is_merged(store) -> None:
    a, b, c = unique("a"), unique("b"), unique("c")
    oldest = await resolve_one(store, ids(a), now=LATER)
    middle = await resolve_one(store, ids(b), now=LATER)
    newest = await resolve_one(store, ids(c), now=LATER)
    claims = [Claim(unique("e"), ids(b, c)), Claim(unique("e"), ids(a, b))]
    first, second = await store.resolve(claims, LATER)
    # The first event's produce may fail: the second event's ack must not go without that merge.
    earlier = f"{newest.customer_id}>{middle.customer_id}"
    assert [m.merge_id for m in first.joins] == [earlier]
    assert [m.merge_id for m in second.joins] == [earlier, f"{middle.customer_id}>{oldest.customer_id}"]
    await store.drop_joins([(oldest.customer_id, m.merge_id) for m in second.joins])


async def test_the_relay_sends_merges_no_event_carried_once_the_grace_is_over(store, backends, events_topic):
    a, b, c, d = unique("a"), unique("b"), unique("c"), unique("d")
    made_at = LATER + timedelta(hours=1)  # after the other tests' pending joins
    survivor = await resolve_one(store, ids(a), now=made_at)
    merged = await resolve_one(store, ids(b), now=made_at)
    await resolve_one(store, ids(a, b), now=made_at)
    overdue = f"{merged.customer_id}>{survivor.customer_id}"
    relay_now = made_at + timedelta(seconds=GRACE_S + 1)
    young_survivor = await resolve_one(store, ids(c), now=relay_now)
    await resolve_one(store, ids(d), now=relay_now)
    await resolve_one(store, ids(c, d), now=relay_now - timedelta(seconds=1))  # pending for 1 s

    link = BrokerLink(backends.kafka_bootstrap_servers, 5.0, contract_topics(3))
    await asyncio.wait_for(link.connect(), 30)
    sent: list[tuple[bytes, bytes]] = []

    async def send(records: list[tuple[bytes, bytes]]) -> list[asyncio.Future[object]]:
        sent.extend(records)
        return await link.send_keyed(TOUCHPOINT_EVENTS, records)

    try:
        relay = JoinRelay(store, send, lambda: relay_now, GRACE_S)
        assert await relay.publish_overdue() >= 1
    finally:
        await link.close()

    kinds = [(record["type"], record["merge_id"]) for record in map(orjson.loads, (v for _, v in sent))]
    at = kinds.index(("identity.merged", overdue))
    assert kinds[at + 1] == ("identity.joined", overdue)
    assert (sent[at][0], sent[at + 1][0]) == (merged.customer_id.encode(), survivor.customer_id.encode())

    def on_the_topic() -> None:
        events_topic.poll()
        kinds = sorted(record["type"] for _, record, _ in events_topic.records[overdue])
        assert kinds == ["identity.joined", "identity.merged"]

    eventually(on_the_topic)
    # Dropped: the survivor's next event carries nothing; the young one is still pending.
    assert (await resolve_one(store, ids(a), now=relay_now)).joins == ()
    young = await resolve_one(store, ids(d), now=relay_now)
    assert young.customer_id == young_survivor.customer_id
    assert [m.survivor_customer_id for m in young.joins] == [young_survivor.customer_id]
    await store.drop_joins([(young.customer_id, m.merge_id) for m in young.joins])


@pytest.fixture
async def tight(backends):
    redis = Redis.from_url(backends.redis_url)
    conflicts: list[str] = []
    yield IdentityStore(redis, 8 * 24 * 3600, TIGHT, on_conflict=conflicts.append), conflicts
    await redis.aclose()


def devices(*names: str) -> list[str]:
    return [f"device_id:{name}" for name in names]


async def test_a_type_at_its_limit_takes_no_new_identifier_and_the_conflict_is_listed(tight) -> None:
    store, conflicts = tight
    a, b, c = unique("u"), unique("u"), unique("u")
    first = await resolve_one(store, ids(a, b))
    event_id = unique("e")
    third = await resolve_one(store, ids(a, c), event_id)  # unionid holds at most 2
    assert (third.customer_id, third.conflict) == (first.customer_id, "identifier_limit")
    assert await store.lookup(f"unionid:{c}") is None  # not bound
    assert (await store.lookup(f"unionid:{a}"))[1] == {"unionid": sorted([a, b])}
    assert conflicts == ["identifier_limit"]
    listed = next(x for x in await store.conflicts(50) if x.event_id == event_id)
    assert (listed.customer_id, listed.reason, listed.others) == (first.customer_id, "identifier_limit", [])


async def test_merges_past_the_days_limit_leave_the_customers_apart(tight) -> None:
    store, conflicts = tight
    hub = unique("hub")  # say, a device shared at a dealer's front desk
    survivor = await resolve_one(store, devices(hub))
    names = [unique("d") for _ in range(3)]
    strangers = [await resolve_one(store, devices(name)) for name in names]
    outcomes = [await resolve_one(store, devices(hub, name)) for name in names]
    assert [o.customer_id for o in outcomes] == [survivor.customer_id] * 3
    assert [o.conflict for o in outcomes] == [None, None, "merge_limit"]  # two merges a day
    assert (await store.lookup(f"device_id:{names[2]}"))[0] == strangers[2].customer_id  # still apart
    listed = (await store.conflicts(1))[0]
    assert (listed.reason, listed.others) == ("merge_limit", [strangers[2].customer_id])
    tomorrow = await resolve_one(store, devices(hub, names[2]), now=NOW + timedelta(days=1))
    assert tomorrow.conflict is None  # a new UTC day, a new allowance
    assert (await store.lookup(f"device_id:{names[2]}"))[0] == survivor.customer_id
    assert conflicts == ["merge_limit"]


async def test_unbound_identifiers_form_one_new_customer(store) -> None:
    a, b, c = unique("a"), unique("b"), unique("c")
    customer = (await resolve_one(store, ids(a, b, c))).customer_id
    new = await store.unbind(customer, [f"unionid:{b}", f"unionid:{c}"], NOW, "li.wei")
    assert new != customer
    assert (await store.lookup(f"unionid:{b}")) == (new, {"unionid": sorted([b, c])})
    assert (await store.lookup(f"unionid:{a}")) == (customer, {"unionid": [a]})
    assert (await resolve_one(store, ids(c))).customer_id == new  # future events follow
    for refused, status in (
        ((customer, [f"unionid:{b}"]), 409),  # not theirs any more
        ((customer, [f"unionid:{a}"]), 409),  # every identifier they have
        ((unique("cus_none"), [f"unionid:{a}"]), 404),
    ):
        with pytest.raises(UnbindRefused) as caught:
            await store.unbind(*refused, NOW, "li.wei")
        assert caught.value.status == status
