"""The dealer desk in Redis: which consultant gets each lead (dealers.assign), shared by every
worker process, with one assignment per action id so that a replay gets the same consultant."""

from __future__ import annotations

from datetime import datetime
from importlib.resources import files

from pydantic import TypeAdapter
from redis.asyncio import Redis
from redis.exceptions import WatchError

from shared.redis import KEY_PREFIX

from .dealers import Consultant, Desk, assign

DESK = f"{KEY_PREFIX}campaign:desk"
ASSIGNMENTS = f"{KEY_PREFIX}campaign:assignments"  # hash action id -> consultant ("" when nobody)
MISSES = f"{KEY_PREFIX}campaign:sla_misses"  # hash consultant -> missed SLAs
_DESK = TypeAdapter(Desk)


def example_roster() -> list[Consultant]:
    raw = files(__package__).joinpath("example_roster.json").read_bytes()
    return TypeAdapter(list[Consultant]).validate_json(raw)


async def assign_lead(
    redis: Redis,
    roster: list[Consultant],
    action_id: str,
    dealer_id: str | None,
    city: str | None,
    now: datetime,
    missed: str | None = None,
) -> str | None:
    """The consultant for the lead of `action_id` (the same on every call for that id)."""
    async with redis.pipeline(transaction=True) as pipe:
        while True:
            try:
                await pipe.watch(DESK, ASSIGNMENTS)
                known = await pipe.hget(ASSIGNMENTS, action_id)
                if known is not None:
                    return known.decode() or None
                raw = await pipe.get(DESK)
                desk = _DESK.validate_json(raw) if raw else Desk()
                exclude = frozenset({missed}) if missed else frozenset()
                consultant, desk = assign(roster, desk, dealer_id, city, now, exclude)
                pipe.multi()
                pipe.set(DESK, _DESK.dump_json(desk))
                pipe.hset(ASSIGNMENTS, action_id, consultant or "")
                if missed:
                    pipe.hincrby(MISSES, missed, 1)
                await pipe.execute()
                return consultant
            except WatchError:  # another worker assigned meanwhile: read again
                continue


async def assignment_of(redis: Redis, action_id: str) -> str | None:
    known = await redis.hget(ASSIGNMENTS, action_id)
    return known.decode() or None if known is not None else None


async def sla_misses(redis: Redis) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in (await redis.hgetall(MISSES)).items()}
