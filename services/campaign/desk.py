"""The dealer desk in Redis: which consultant gets each lead (dealers.assign), the leads still
open or waiting in the pool, SLA misses and handovers per consultant. Shared by every campaign
worker process; the API reads it.

Keys (under `pd:campaign:`):
- `desk` today's loads and round-robin cursors (dealers.Desk);
- `assignments` hash action id -> consultant: one assignment per action id, so that a replay
  gets the same consultant;
- `leads` hash action id -> LeadRecord, for every lead open or in the pool (a closed lead, once
  followed up or handed on, leaves it);
- `leads:pool` sorted set action id -> when it came (oldest is assigned first);
- `leads:open` sorted set action id -> its SLA deadline (overdue: the deadline has passed);
- `leads:consultant:{id}` and `leads:customer:{id}` sets of action ids, with `leads:consultants`
  the consultants that have any (so that moving an inactive consultant's leads never scans);
- `leads:released` sorted set of leads assigned from the pool whose action the worker has not
  yet seen acknowledged by the broker (it sends them again after a crash, same action id);
- `sla_misses`, `handovers` hashes consultant -> count.
Every lead change happens in one optimistic transaction with the desk: a lead is never both in
the pool and open, nor assigned twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import WatchError

from shared.redis import KEY_PREFIX

from .dealers import Desk, Roster, assign

PREFIX = f"{KEY_PREFIX}campaign:"
DESK = f"{PREFIX}desk"
ASSIGNMENTS = f"{PREFIX}assignments"
LEADS = f"{PREFIX}leads"
POOL = f"{PREFIX}leads:pool"
OPEN = f"{PREFIX}leads:open"
RELEASED = f"{PREFIX}leads:released"
HOLDERS = f"{PREFIX}leads:consultants"
MISSES = f"{PREFIX}sla_misses"
HANDOVERS = f"{PREFIX}handovers"
MAX_HANDOVERS = 10  # kept per lead: the latest
SCANNED = 5_000  # the most leads a listing reads (the oldest or most urgent), whatever its filter
_DESK = TypeAdapter(Desk)
_MOVED = uuid.UUID("0b7d1f55-8f0e-4c1a-a2d4-6e3f9b1c7a20")


def consultant_key(consultant_id: str) -> str:
    return f"{PREFIX}leads:consultant:{consultant_id}"


def customer_key(customer_id: str) -> str:
    return f"{PREFIX}leads:customer:{customer_id}"


HandoverReason = Literal["assigned", "from_pool", "sla_missed", "consultant_inactive"]


class Handover(BaseModel):
    model_config = ConfigDict(frozen=True)

    consultant_id: str | None = Field(description="null: the lead went to the pool")
    at: datetime
    reason: HandoverReason


class LeadRecord(BaseModel):
    """A hot lead handed to dealers, as `GET /v1/leads` lists it."""

    model_config = ConfigDict(frozen=True)

    action_id: str = Field(description="the assign_dealer action that hands it (or will)")
    customer_id: str
    campaign_id: str
    store_id: str | None = Field(description="the customer's store, when known")
    city: str | None
    vehicle_model: str | None = Field(default=None, description="the car model they are most interested in")
    state: Literal["pool", "open"]
    consultant_id: str | None
    consultant_store_id: str | None = None
    since: datetime = Field(description="when the lead came to the desk")
    assigned_at: datetime | None = None
    sla_hours: float
    sla_due: datetime | None = None
    excluded: list[str] = Field(default_factory=list, description="consultants it must not go back to")
    handovers: list[Handover] = Field(default_factory=list, description="oldest first, the latest 10")


@dataclass(frozen=True)
class Lead:
    """A lead to hand to a consultant: the action that assigns it and where the customer is."""

    action_id: str
    customer_id: str
    campaign_id: str
    store_id: str | None
    city: str | None
    sla_hours: float
    replaces: str | None = None  # the action id of the lead this reassigns after a missed SLA
    missed: str | None = None  # the consultant who missed that SLA
    vehicle_model: str | None = None  # the car model they are most interested in, if known


async def assign_leads(
    redis: Redis, roster: Roster, leads: list[Lead], now: datetime
) -> dict[str, str | None]:
    """The consultant for each lead, by action id (None: nobody suitable has capacity left, and
    the lead waits in the pool). The same on every call for an action id. One optimistic
    transaction for the whole batch: a lead costs no round trip of its own."""
    if not leads:
        return {}
    async with redis.pipeline(transaction=True) as pipe:
        while True:
            try:
                await pipe.watch(DESK, ASSIGNMENTS, LEADS)
                known = await pipe.hmget(ASSIGNMENTS, [lead.action_id for lead in leads])
                replaced = {
                    r.action_id: r for r in await _records(pipe, [le.replaces for le in leads if le.replaces])
                }
                desk = await _desk(pipe)
                chosen: dict[str, str | None] = {}
                writes: list[tuple[LeadRecord, LeadRecord | None]] = []
                misses: list[str] = []
                for lead, before in zip(leads, known, strict=True):
                    if lead.action_id in chosen:
                        continue
                    if before is not None:
                        chosen[lead.action_id] = before.decode()
                        continue
                    exclude = frozenset({lead.missed}) if lead.missed else frozenset()
                    consultant, desk = assign(
                        roster, desk, lead.store_id, lead.city, now, exclude, lead.vehicle_model
                    )
                    chosen[lead.action_id] = consultant
                    old = replaced.get(lead.replaces or "")
                    reason: HandoverReason = "sla_missed" if lead.missed else "assigned"
                    writes.append((_record(lead, old, roster, consultant, now, reason), old))
                    if lead.missed:
                        misses.append(lead.missed)
                if not writes:
                    return chosen
                pipe.multi()
                pipe.set(DESK, _DESK.dump_json(desk))
                for record, old in writes:
                    if old is not None:
                        _forget(pipe, old)
                    _keep(pipe, record)
                for missed in misses:
                    pipe.hincrby(MISSES, missed, 1)
                await pipe.execute()
                return chosen
            except WatchError:  # another worker assigned meanwhile: read again
                continue


def _record(
    lead: Lead,
    old: LeadRecord | None,
    roster: Roster,
    consultant: str | None,
    now: datetime,
    reason: HandoverReason,
) -> LeadRecord:
    handovers = [*(old.handovers if old else []), Handover(consultant_id=consultant, at=now, reason=reason)]
    excluded = sorted({*(old.excluded if old else []), *([lead.missed] if lead.missed else [])})
    record = LeadRecord(
        action_id=lead.action_id,
        customer_id=lead.customer_id,
        campaign_id=lead.campaign_id,
        store_id=lead.store_id,
        city=lead.city,
        vehicle_model=lead.vehicle_model or (old.vehicle_model if old else None),
        state="pool",
        consultant_id=None,
        since=old.since if old else now,
        sla_hours=lead.sla_hours,
        excluded=excluded,
        handovers=handovers[-MAX_HANDOVERS:],
    )
    return _assigned(record, roster, consultant, now) if consultant else record


def _assigned(record: LeadRecord, roster: Roster, consultant: str, now: datetime) -> LeadRecord:
    return record.model_copy(
        update={
            "state": "open",
            "consultant_id": consultant,
            "consultant_store_id": roster.store_of(consultant),
            "assigned_at": now,
            "sla_due": now + timedelta(hours=record.sla_hours),
        }
    )


async def _desk(pipe: Pipeline) -> Desk:
    raw = await pipe.get(DESK)
    return _DESK.validate_json(raw) if raw else Desk()


async def _records(pipe: Pipeline | Redis, action_ids: Iterable[str]) -> list[LeadRecord]:
    ids = list(action_ids)
    if not ids:
        return []
    return [LeadRecord.model_validate_json(raw) for raw in await pipe.hmget(LEADS, ids) if raw is not None]


def _keep(pipe: Pipeline, record: LeadRecord) -> None:
    pipe.hset(LEADS, record.action_id, record.model_dump_json())
    pipe.sadd(customer_key(record.customer_id), record.action_id)
    if record.state == "pool":
        pipe.zadd(POOL, {record.action_id: record.since.timestamp()})
        pipe.zrem(OPEN, record.action_id)
        return
    assert record.consultant_id is not None and record.sla_due is not None
    pipe.zrem(POOL, record.action_id)
    pipe.zadd(OPEN, {record.action_id: record.sla_due.timestamp()})
    pipe.sadd(consultant_key(record.consultant_id), record.action_id)
    pipe.sadd(HOLDERS, record.consultant_id)
    pipe.hset(ASSIGNMENTS, record.action_id, record.consultant_id)
    pipe.hincrby(HANDOVERS, record.consultant_id, 1)


def _forget(pipe: Pipeline, record: LeadRecord) -> None:
    pipe.hdel(LEADS, record.action_id)
    pipe.zrem(POOL, record.action_id)
    pipe.zrem(OPEN, record.action_id)
    pipe.srem(customer_key(record.customer_id), record.action_id)
    if record.consultant_id:
        pipe.srem(consultant_key(record.consultant_id), record.action_id)


async def release_pool(redis: Redis, roster: Roster, now: datetime, limit: int = 500) -> list[LeadRecord]:
    """Leads that can leave the pool now, assigned (oldest first): capacity freed by a new day or a
    consultant added. Also sends back to the pool every open lead of a consultant who is no
    longer active (or no longer in the roster), under a new action id, so that it is handed to
    someone else as a new action. Returns the leads assigned now and any assigned before whose
    action the caller has not confirmed sent (`confirm_released`)."""
    await _move_from_inactive(redis, roster, now)
    async with redis.pipeline(transaction=True) as pipe:
        while True:
            try:
                await pipe.watch(DESK, ASSIGNMENTS, LEADS, POOL)
                waiting = await _records(pipe, [m.decode() for m in await pipe.zrange(POOL, 0, limit - 1)])
                unconfirmed = await _records(pipe, [m.decode() for m in await pipe.zrange(RELEASED, 0, -1)])
                desk = await _desk(pipe)
                released: list[LeadRecord] = []
                for record in waiting:
                    consultant, desk = assign(
                        roster,
                        desk,
                        record.store_id,
                        record.city,
                        now,
                        frozenset(record.excluded),
                        record.vehicle_model,
                    )
                    if consultant is None:
                        continue
                    handover = Handover(consultant_id=consultant, at=now, reason="from_pool")
                    record = record.model_copy(
                        update={"handovers": [*record.handovers, handover][-MAX_HANDOVERS:]}
                    )
                    released.append(_assigned(record, roster, consultant, now))
                if not released:
                    return unconfirmed
                pipe.multi()
                pipe.set(DESK, _DESK.dump_json(desk))
                for record in released:
                    _keep(pipe, record)
                    pipe.zadd(RELEASED, {record.action_id: now.timestamp()})
                await pipe.execute()
                return [*unconfirmed, *released]
            except WatchError:
                continue


async def confirm_released(redis: Redis, action_ids: Iterable[str]) -> None:
    """The actions of these released leads are on the actions topic."""
    if ids := list(action_ids):
        await redis.zrem(RELEASED, *ids)


def moved_action_id(action_id: str, consultant_id: str) -> str:
    """The id of the action that hands a lead on from a consultant who left: new, and the same
    every time for that lead and consultant."""
    return str(uuid.uuid5(_MOVED, f"{action_id}\x00{consultant_id}"))


async def _move_from_inactive(redis: Redis, roster: Roster, now: datetime) -> None:
    holders = {m.decode() for m in await redis.smembers(HOLDERS)}
    gone = sorted(h for h in holders if (c := roster.consultants.get(h)) is None or not c.active)
    for consultant_id in gone:
        key = consultant_key(consultant_id)
        async with redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(LEADS, key)
                    records = await _records(pipe, [m.decode() for m in await pipe.smembers(key)])
                    pipe.multi()
                    for record in records:
                        _forget(pipe, record)
                        handover = Handover(consultant_id=None, at=now, reason="consultant_inactive")
                        moved = record.model_copy(
                            update={
                                "action_id": moved_action_id(record.action_id, consultant_id),
                                "state": "pool",
                                "consultant_id": None,
                                "consultant_store_id": None,
                                "assigned_at": None,
                                "sla_due": None,
                                "excluded": sorted({*record.excluded, consultant_id}),
                                "handovers": [*record.handovers, handover][-MAX_HANDOVERS:],
                            }
                        )
                        _keep(pipe, moved)
                    pipe.delete(key)
                    pipe.srem(HOLDERS, consultant_id)
                    await pipe.execute()
                    break
                except WatchError:
                    continue


async def close_leads(redis: Redis, customer_ids: Iterable[str]) -> None:
    """A dealer followed up with these customers: their open and waiting leads are done."""
    for customer_id in set(customer_ids):
        key = customer_key(customer_id)
        records = await _records(redis, [m.decode() for m in await redis.smembers(key)])
        async with redis.pipeline(transaction=True) as pipe:
            for record in records:
                _forget(pipe, record)
            await pipe.execute()


async def open_lead(redis: Redis, action_id: str) -> LeadRecord | None:
    records = await _records(redis, [action_id])
    return records[0] if records else None


async def sla_misses(redis: Redis) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in (await redis.hgetall(MISSES)).items()}


async def handovers(redis: Redis) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in (await redis.hgetall(HANDOVERS)).items()}


async def lead_counts(redis: Redis, now: datetime) -> dict[str, int]:
    """Leads waiting in the pool, open, and open past their SLA."""
    pipe = redis.pipeline(transaction=False)
    pipe.zcard(POOL)
    pipe.zcard(OPEN)
    pipe.zcount(OPEN, "-inf", f"({now.timestamp()}")
    pool, open_, overdue = await pipe.execute()
    return {"pool": int(pool), "open": int(open_), "overdue": int(overdue)}


async def list_leads(
    redis: Redis,
    state: Literal["pool", "open", "overdue"],
    now: datetime,
    *,
    store_id: str | None = None,
    consultant_id: str | None = None,
    vehicle_model: str | None = None,
    limit: int = 100,
) -> list[LeadRecord]:
    """Leads in a state, oldest (pool) or most urgent (open, overdue) first."""
    if consultant_id:
        ids = [m.decode() for m in await redis.smembers(consultant_key(consultant_id))]
    elif state == "pool":
        ids = [m.decode() for m in await redis.zrange(POOL, 0, SCANNED - 1)]
    else:
        high = f"({now.timestamp()}" if state == "overdue" else "+inf"
        ids = [m.decode() for m in await redis.zrangebyscore(OPEN, "-inf", high, start=0, num=SCANNED)]
    records = await _records(redis, ids)
    picked = [
        r
        for r in records
        if (r.state == "pool") == (state == "pool")
        and (state != "overdue" or (r.sla_due is not None and r.sla_due < now))
        and (store_id is None or store_id in (r.consultant_store_id, r.store_id))
        and (vehicle_model is None or r.vehicle_model == vehicle_model)
    ]
    picked.sort(key=lambda r: r.since if state == "pool" else (r.sla_due or r.since))
    return picked[:limit]
