"""Accepted events per minute and source: ingest's traffic, as the ops console charts it.

Counted in the Redis call that marks a group's acknowledged events seen (mark_seen.lua), so the
count costs no round trip of its own and counts only what is on the topic: one hash per UTC
minute, `pd:ingest:minute:<YYYY-MM-DDTHH:MM>`, source -> events. An event counts only when its
seen-mark is new, so a duplicate, a retry or the same event in two racing requests counts once.
The hashes live longer than the longest window the API serves.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from pydantic import BaseModel, Field, PlainSerializer
from redis.asyncio import Redis

from shared.redis import KEY_PREFIX

MAX_MINUTES = 24 * 60  # the longest window the API serves
MINUTE_TTL_S = (MAX_MINUTES + 60) * 60  # each hash outlives every window that can show it
MINUTE_PREFIX = f"{KEY_PREFIX}ingest:minute:"

# "+00:00", as the rest of ingest writes times (received_at), rather than pydantic's "Z".
Minute = Annotated[datetime, PlainSerializer(datetime.isoformat, return_type=str)]


class MinuteCount(BaseModel):
    at: Minute = Field(description="the minute's start, UTC")
    by_source: dict[str, int] = Field(description="accepted events per source; sources without any absent")


class EventsPerMinute(BaseModel):
    minutes: list[MinuteCount] = Field(description="oldest first, every minute, the current one last")


def minute_of(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(second=0, microsecond=0)


def minute_key(at: datetime) -> str:
    return f"{MINUTE_PREFIX}{minute_of(at):%Y-%m-%dT%H:%M}"


def window(now: datetime, minutes: int) -> list[datetime]:
    """The `minutes` minutes up to and including the current one, oldest first."""
    current = minute_of(now)
    return [current - timedelta(minutes=back) for back in range(minutes - 1, -1, -1)]


async def events_per_minute(redis: Redis, now: datetime, minutes: int) -> EventsPerMinute:
    """One pipelined HGETALL per minute of the window: the keys are computed, nothing is scanned.
    A whole day (1,440 commands) costs a few ms of Redis, spread so that ingest's own calls
    pass in between, and ~30 ms of this process (mostly the client's cost per command)."""
    starts = window(now, minutes)
    pipe = redis.pipeline(transaction=False)
    for start in starts:
        pipe.hgetall(minute_key(start))
    counts: list[dict[bytes, bytes]] = await pipe.execute()
    # Validated in one pass (pydantic turns the bytes into str and int): a model per minute
    # built one by one cost as much again for a day.
    return EventsPerMinute.model_validate(
        {"minutes": [{"at": start, "by_source": count} for start, count in zip(starts, counts, strict=True)]}
    )
