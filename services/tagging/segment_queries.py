"""Segment counts, members and the funnel, answered inside Redis from the read model's sets.

Never a scan of the customers and never every customer fetched into Python (segments.py has the
set algebra and the choices, from the sizes of the sets named, read first):
- a count is a SCARD, a SINTERCARD, or a signed sum of a few of them in one MULTI;
- a large segment's members are read a page at a time by SSCAN of one live set (everyone's, or
  the query's smallest single set), keeping those SMISMEMBER finds in the rest of the query;
- any other segment is stored by SUNIONSTORE/SINTERSTORE/SDIFFSTORE in one MULTI and its pages
  read by SSCAN of the stored result.

A stored result is shared deliberately: it is named by the query's digest and a snapshot window
(`query:{digest}:{window}`), so requests for the same segment within a window share one instead
of each building a copy. A page cursor names the window, so paging keeps reading the same
snapshot while it lives (every page renews its TTL); a later first page starts a fresher one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import orjson
from redis.asyncio import Redis

from .funnel import FUNNEL, FunnelStep
from .paging import PageCursor
from .read_model import ALL, PREFIX, ProfileView, profile_key, segment_key
from .segments import (
    EVERYONE,
    EVERYONE_GROUP,
    MIN_PASS_RATE,
    RESULT,
    LiveScan,
    Operand,
    Plan,
    Segment,
    SegmentQuery,
    count_terms,
    live_scan,
    materialisation,
    scan_of,
)

# First pages of the same segment within a window share one stored result: its members may be
# this much older than the request. Counts are live but for the rare query counted by storing.
SNAPSHOT_WINDOW_S = 15
# How long a stored result outlives its last use: time enough to turn a page, short enough that
# a segment paged over and over keeps only a few snapshots (one per window) alive.
RESULT_TTL_S = 60
# The stored results' names, by when each was last made or renewed (epoch s): so that an erasure
# finds them without a scan (erasure.py). Names older than a day are pruned as results are made.
STORED_RESULTS = f"{PREFIX}stored_results"
# Bounds on the members of a live set one page reads, so that a segment rarer in it than its
# sizes suggested costs a short page, not a long request.
MAX_READ_PER_CALL = 1_000
MAX_READ_PER_PAGE = 5_000


@dataclass(frozen=True)
class MembersPage:
    count: int  # of the set the pages come from
    members: list[ProfileView]
    next_cursor: PageCursor | None


class ForeignCursor(ValueError):
    """A cursor given out for another query."""


def result_key(digest: str, window: int) -> str:
    return f"{PREFIX}query:{digest}:{window}"


async def count(redis: Redis, query: SegmentQuery, now_s: float | None = None) -> int:
    """Customers in the segment; all customers without filters."""
    plan = query.plan()
    if plan.intersection_only:  # one round trip, no sizes needed
        keys = sorted({_key(group[0]) for group in plan.all_of})
        if not keys:
            return int(await redis.scard(ALL))
        if len(keys) == 1:
            return int(await redis.scard(keys[0]))
        return int(await redis.sintercard(len(keys), keys))
    sizes, _ = await _sizes(redis, plan)
    return await _count(redis, query, plan, sizes, now_s)


async def _count(
    redis: Redis, query: SegmentQuery, plan: Plan, sizes: dict[Segment, int], now_s: float | None
) -> int:
    terms = count_terms(plan, sizes)
    if terms is None:  # too many intersections to add up: store the result once and count it
        return await _stored(redis, plan, result_key(query.digest(), _window(now_s)), sizes)
    # One MULTI: every term sees the same state, so the sum is a count that was true at once.
    pipe = redis.pipeline(transaction=True)
    for _, segments in terms:
        keys = [_key(s) for s in segments] or [ALL]
        if len(keys) == 1:
            pipe.scard(keys[0])
        else:
            pipe.sintercard(len(keys), keys)
    found = await pipe.execute()
    return sum(sign * int(size) for (sign, _), size in zip(terms, found, strict=True))


async def _sizes(redis: Redis, plan: Plan) -> tuple[dict[Segment, int], int]:
    """The sizes of the sets the query names, and of everyone's, for the plans to start from
    the smallest. Read apart from the operations they guide: a stale size costs time, never
    correctness."""
    segments = plan.segments
    pipe = redis.pipeline(transaction=False)
    for segment in segments:
        pipe.scard(_key(segment))
    pipe.scard(ALL)
    *sizes, everyone = await pipe.execute()
    return {segment: int(n) for segment, n in zip(segments, sizes, strict=True)}, int(everyone)


async def members(
    redis: Redis, query: SegmentQuery, limit: int, cursor: PageCursor | None, now_s: float | None = None
) -> MembersPage:
    """One page of the segment's customers, in no particular order.

    A large segment is read live (segments.live_scan): every customer in it from the first page
    to the last comes at least once, and pages may be a few short of `limit`. Any other is read
    from a stored result: each of its customers exactly once, full pages. `count` is the
    segment's size when paging began. A customer merged away since is left out of their page.
    """
    digest = query.digest()
    if cursor is not None and cursor.query != digest:
        raise ForeignCursor("the cursor belongs to another query")
    plan = query.plan()
    sizes, everyone = await _sizes(redis, plan)
    if cursor is None:
        live = live_scan(plan, sizes, everyone)
        window = None if live is not None else _window(now_s)
    elif cursor.live_group is not None:
        live = _live_again(plan, cursor.live_group, sizes, everyone)
        window = None
    else:
        live, window = None, cursor.window
    if live is not None:
        key = ALL if live.group == EVERYONE_GROUP else _key(plan.all_of[live.group][0])
        # Counted once, for the first page: a count can cost more than a page.
        size = cursor.total if cursor is not None else await _count(redis, query, plan, sizes, now_s)
        ids, following = await _page(redis, key, limit, cursor, Filtered(redis, live))
    else:
        assert window is not None
        key = result_key(digest, window)
        size = await _stored(redis, plan, key, sizes)
        ids, following = await _page(redis, key, limit, cursor, None)
    next_cursor = None
    if following is not None:
        scan, skip, asked = following
        group = live.group if live is not None else None
        next_cursor = PageCursor(digest, window, group, scan, skip, asked, size)
    return MembersPage(size, await _profiles(redis, ids), next_cursor)


def _live_again(plan: Plan, group: int, sizes: dict[Segment, int], everyone: int) -> LiveScan:
    """The live scan a cursor names: the set read stays the same from page to page."""
    try:
        return scan_of(plan, group, sizes, everyone)
    except ValueError:
        raise ForeignCursor("the cursor belongs to another query") from None


async def funnel(redis: Redis) -> tuple[list[tuple[FunnelStep, int]], int]:
    """Customers who reached each funnel step, in funnel order, and all customers."""
    pipe = redis.pipeline(transaction=True)
    for step in FUNNEL:
        pipe.scard(segment_key("reached", step))
    pipe.scard(ALL)
    *reached, total = await pipe.execute()
    return [(step, int(n)) for step, n in zip(FUNNEL, reached, strict=True)], int(total)


def _key(operand: Operand) -> str:
    if operand == EVERYONE:
        return ALL
    assert isinstance(operand, tuple)
    return segment_key(*operand)


def _window(now_s: float | None) -> int:
    return int((time.time() if now_s is None else now_s) // SNAPSHOT_WINDOW_S)


async def _stored(redis: Redis, plan: Plan, key: str, sizes: dict[Segment, int]) -> int:
    """Size of the stored result at `key`, materialising it unless it is there.

    EXPIRE both tests for the result and renews it. Two requests that find it missing at the
    same moment both build it, milliseconds apart, the second replacing the first's with the
    same members but for writes made in between (a page of the first read in that gap may
    repeat or miss a member of the one SSCAN call it ends in). An empty result is no key at
    all (Redis keeps no empty sets), so it is computed again each time: as cheap as finding it.
    """
    pipe = redis.pipeline(transaction=False)
    pipe.expire(key, RESULT_TTL_S)
    pipe.scard(key)
    pipe.zadd(STORED_RESULTS, {key: time.time()}, xx=True)
    found, size, _ = await pipe.execute()
    if found:
        return int(size)
    return await _materialise(redis, plan, key, sizes)


async def _materialise(redis: Redis, plan: Plan, key: str, sizes: dict[Segment, int]) -> int:
    ops = materialisation(plan, sizes)

    # Scratch sets are named after the result, so they are as private as it is; one MULTI so
    # every operation sees the same state and no scratch set outlives the result's making.
    def name(operand: Operand) -> str:
        if operand == RESULT:
            return key
        if isinstance(operand, str) and operand.startswith("scratch:"):
            return f"{key}:{operand}"
        return _key(operand)

    pipe = redis.pipeline(transaction=True)
    for op in ops:
        sources = [name(source) for source in op.sources]
        store = {"union": pipe.sunionstore, "inter": pipe.sinterstore, "diff": pipe.sdiffstore}[op.kind]
        store(name(op.destination), sources)
    scratch = sorted({name(op.destination) for op in ops} - {key})
    if scratch:
        pipe.unlink(*scratch)  # freed off the main thread: they can be large
    pipe.expire(key, RESULT_TTL_S)
    now = time.time()
    pipe.zadd(STORED_RESULTS, {key: now})
    pipe.zremrangebyscore(STORED_RESULTS, "-inf", now - 86400)
    pipe.scard(key)
    results = await pipe.execute()
    return int(results[-1])


@dataclass(frozen=True)
class Filtered:
    """Which members of a live set read are in the segment: SMISMEMBER of each set the rest of
    the query tests, in one round trip, decided by the plan (segments.Plan.passes)."""

    redis: Redis
    live: LiveScan

    async def __call__(self, ids: list[str]) -> list[bool]:
        tested = self.live.checks.tested
        if not tested or not ids:
            return [True] * len(ids)
        pipe = self.redis.pipeline(transaction=False)
        for segment in tested:
            pipe.smismember(_key(segment), ids)
        answers = await pipe.execute()
        membership = {s: [bool(a) for a in answer] for s, answer in zip(tested, answers, strict=True)}
        return self.live.checks.passes(membership, len(ids))


def _ask(room: int, filtered: Filtered | None) -> int:
    """SSCAN's COUNT for a page with `room` left. SSCAN stops once it has collected COUNT
    members, so it answers COUNT plus the rest of the last bucket it read. A stored result holds
    still, so a page may end inside a call (the next page repeats it and skips). On a live set,
    asking for a little less than the room (divided by the share expected to pass) lets pages
    end between calls instead."""
    if filtered is None:
        return room
    wanted = max(1, room - 2 - room // 16)
    rate = max(filtered.live.pass_rate, MIN_PASS_RATE)  # the estimate may have gone stale
    return max(1, min(MAX_READ_PER_CALL, round(wanted / rate)))


async def _page(
    redis: Redis, key: str, limit: int, cursor: PageCursor | None, filtered: Filtered | None
) -> tuple[list[str], tuple[int, int, int] | None]:
    """Up to `limit` customers from where `cursor` left off, and (scan, skip, count) to go on.

    A live set's members are kept if they pass `filtered`; a page reads at most
    MAX_READ_PER_PAGE of them, and may come back short (even empty) with a cursor to go on."""
    scan, skip, asked = (cursor.scan, cursor.skip, cursor.count) if cursor else (0, 0, 0)
    found: list[str] = []
    read = 0
    while True:
        room = limit - len(found)
        ask = asked if skip else _ask(room, filtered)  # repeat a call exactly to skip into it
        following, batch = await redis.sscan(key, scan, count=ask)
        candidates = [member.decode() for member in batch[skip:]]
        kept = await filtered(candidates) if filtered else [True] * len(candidates)
        passing = [n for n, keep in enumerate(kept) if keep]
        if len(passing) > room:
            if found and filtered:
                # A live set may change before the next page, and with it what this call
                # answers: leave the whole call to the next page rather than skip into it.
                return found, (scan, 0, 0)
            cut = passing[room - 1] + 1  # the members of this call read for this page
            return found + [candidates[n] for n in passing[:room]], (scan, skip + cut, ask)
        found += [candidates[n] for n in passing]
        read += len(candidates)
        skip = 0
        if following == 0:
            return found, None
        scan = int(following)
        if len(found) == limit or read >= MAX_READ_PER_PAGE:
            return found, (scan, 0, 0)


async def _profiles(redis: Redis, ids: list[str]) -> list[ProfileView]:
    if not ids:
        return []
    raws = await redis.mget([profile_key(customer_id) for customer_id in ids])
    snapshots = [orjson.loads(raw) for raw in raws if raw is not None]
    return [ProfileView.model_validate(s) for s in snapshots if s.get("merged_into") is None]
