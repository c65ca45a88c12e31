"""Identity resolution and dedupe against a real Redis (resolve.lua)."""

import asyncio
from datetime import UTC, datetime

import pytest
from redis.asyncio import Redis

from services.ingest.identity_store import Claim, IdentityStore
from tests.factories import unique

NOW = datetime.now(UTC)


@pytest.fixture
async def store(backends):
    redis = Redis.from_url(backends.redis_url)
    yield IdentityStore(redis, seen_ttl_s=8 * 24 * 3600)
    await redis.aclose()


def ids(*names: str) -> list[str]:
    return [f"unionid:{name}" for name in names]


async def resolve_one(store: IdentityStore, identity_keys: list[str], event_id: str | None = None):
    [resolution], merges = await store.resolve([Claim(event_id or unique("e"), identity_keys)], NOW)
    return resolution, merges


async def test_identifiers_seen_together_belong_to_one_customer(store) -> None:
    a, b = unique("a"), unique("b")
    first, _ = await resolve_one(store, ids(a))
    second, _ = await resolve_one(store, ids(a, b))
    third, _ = await resolve_one(store, ids(b))
    assert first.customer_id == second.customer_id == third.customer_id
    assert not first.duplicate


async def test_linking_two_customers_merges_the_newer_into_the_older(store) -> None:
    a, b = unique("a"), unique("b")
    older, _ = await resolve_one(store, ids(a))
    newer, _ = await resolve_one(store, ids(b))
    assert older.customer_id != newer.customer_id
    linked, merges = await resolve_one(store, ids(b, a))  # newer first: age decides, not order
    assert (linked.customer_id, merges) == (older.customer_id, 1)
    assert await store.lookup(f"unionid:{b}") == (older.customer_id, {"unionid": sorted([a, b])})

    pending = [merge for _, merge in await store.pending_merges(1000)]
    mine = [m for m in pending if m.merged_customer_id == newer.customer_id]
    assert [(m.survivor_customer_id, m.identities, m.merge_id) for m in mine] == [
        (older.customer_id, {"unionid": [b]}, f"{newer.customer_id}>{older.customer_id}")
    ]


async def test_a_seen_event_is_a_duplicate_of_the_survivor(store) -> None:
    a, b = unique("a"), unique("b")
    event_id = unique("e")
    older, _ = await resolve_one(store, ids(b), event_id)
    await store.mark_seen([(event_id, older.customer_id)])
    newer, _ = await resolve_one(store, ids(a))
    linked, _ = await resolve_one(store, ids(a, b))
    again, _ = await resolve_one(store, ids(b), event_id)
    assert again.duplicate
    assert again.customer_id == linked.customer_id == older.customer_id != newer.customer_id


async def test_merged_away_customers_point_to_their_survivor_through_chains(store) -> None:
    a, b, c = unique("a"), unique("b"), unique("c")
    oldest, _ = await resolve_one(store, ids(a))
    await resolve_one(store, ids(b))  # the middle customer
    event_id = unique("e")
    newest, _ = await resolve_one(store, ids(c), event_id)
    await store.mark_seen([(event_id, newest.customer_id)])
    await resolve_one(store, ids(b, c))  # newest -> middle
    await resolve_one(store, ids(a, b))  # middle -> oldest
    again, _ = await resolve_one(store, ids(c), event_id)
    assert again.customer_id == oldest.customer_id
    assert (await store.lookup(f"unionid:{c}"))[1] == {"unionid": sorted([a, b, c])}


async def test_racing_links_of_the_same_identifiers_make_one_customer(backends) -> None:
    # Many connections, each linking the same fresh pair in either order, all at once.
    clients = [Redis.from_url(backends.redis_url) for _ in range(8)]
    stores = [IdentityStore(client, 3600 * 24 * 8) for client in clients]
    try:
        for _ in range(20):
            a, b = unique("a"), unique("b")
            pairs = [ids(a, b) if i % 2 else ids(b, a) for i in range(len(stores))]
            results = await asyncio.gather(*(resolve_one(s, p) for s, p in zip(stores, pairs, strict=True)))
            assert len({resolution.customer_id for resolution, _ in results}) == 1
    finally:
        for client in clients:
            await client.aclose()


async def test_unknown_identifier_is_not_found(store) -> None:
    assert await store.lookup(f"unionid:{unique('nobody')}") is None
