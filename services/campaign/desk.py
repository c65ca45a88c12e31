"""The dealer desk in Redis: which consultant gets each lead (dealers.assign), shared by every
worker process, with one assignment per action id so that a replay gets the same consultant."""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(frozen=True)
class Lead:
    """A lead to hand to a consultant: the action that assigns it and where the customer is."""

    action_id: str
    dealer_id: str | None
    city: str | None
    missed: str | None = None  # the consultant who missed its SLA, when this is a reassignment


async def assign_leads(
    redis: Redis, roster: list[Consultant], leads: list[Lead], now: datetime
) -> dict[str, str | None]:
    """The consultant for each lead, by action id (None: nobody suitable has capacity left).

    The same on every call for an action id. One optimistic transaction for the whole batch
    (the desk is one key, so every lead would read and write it anyway): a lead costs no round
    trip of its own.
    """
    if not leads:
        return {}
    async with redis.pipeline(transaction=True) as pipe:
        while True:
            try:
                await pipe.watch(DESK, ASSIGNMENTS)
                known = await pipe.hmget(ASSIGNMENTS, [lead.action_id for lead in leads])
                raw = await pipe.get(DESK)
                desk = _DESK.validate_json(raw) if raw else Desk()
                chosen: dict[str, str | None] = {}
                new: dict[str, str] = {}
                misses: list[str] = []
                for lead, before in zip(leads, known, strict=True):
                    if lead.action_id in chosen:
                        continue
                    if before is not None:
                        chosen[lead.action_id] = before.decode() or None
                        continue
                    exclude = frozenset({lead.missed}) if lead.missed else frozenset()
                    consultant, desk = assign(roster, desk, lead.dealer_id, lead.city, now, exclude)
                    chosen[lead.action_id] = consultant
                    new[lead.action_id] = consultant or ""
                    if lead.missed:
                        misses.append(lead.missed)
                if not new:
                    return chosen
                pipe.multi()
                pipe.set(DESK, _DESK.dump_json(desk))
                pipe.hset(ASSIGNMENTS, mapping=new)
                for missed in misses:
                    pipe.hincrby(MISSES, missed, 1)
                await pipe.execute()
                return chosen
            except WatchError:  # another worker assigned meanwhile: read again
                continue


async def assignment_of(redis: Redis, action_id: str) -> str | None:
    known = await redis.hget(ASSIGNMENTS, action_id)
    return known.decode() or None if known is not None else None


async def sla_misses(redis: Redis) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in (await redis.hgetall(MISSES)).items()}
