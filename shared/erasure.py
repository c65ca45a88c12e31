"""Erasure (PIPL's right to deletion): what ingest records and every worker reads.

A customer is erased by ingest (`DELETE /v1/customers/{id}`, docs/privacy.md, "Erasure"): their
identities go, an erasure record stays, and a **tombstone** (key: the customer id, no value) goes
on `touchpoint.events.v1` for them and for every customer merged into them. The tombstone
travels down the chain like any input of theirs, after everything accepted for them before it:
each worker drops the customer's row (a tombstone on its changelog), removes them from its read
model and passes the tombstone on (scoring on `scored.inputs.v1`, tagging on `tagged.inputs.v1`).

The erasure record (`pd:erased`: customer id -> who erased them, when) is the only place the id
stays. Workers read it before each batch (one GET of its version; the ids only when it moved):
an input for an erased customer that comes after the tombstone — a replay, a tick, an event
ingest resolved just before the erasure, a handover — is dropped, so nothing brings them back.
Ingest writes the record before it publishes the tombstone, so a worker that reads the
tombstone has already seen the record (as with the plan and the rules, docs/causal-order.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import AwareDatetime, BaseModel, ConfigDict
from redis.asyncio import Redis

ERASED = "pd:erased"  # hash: customer id -> ErasureRecord (JSON)
ERASED_VERSION = "pd:erased:version"  # counter, moved by every erasure
PENDING = "pd:erased:pending"  # set: erasures whose tombstones are not acknowledged yet


class ErasureRecord(BaseModel):
    """What stays of an erased customer: who was erased, when, by whom (the ops holder)."""

    model_config = ConfigDict(frozen=True)

    customer_id: str
    erased_at: AwareDatetime
    by: str
    # Every customer erased with it: the one named and those merged into them (one person).
    customer_ids: list[str]
    schema_version: int = 1


@dataclass(frozen=True, slots=True)
class CustomerErased:
    """A tombstone read from an input topic: the customer is erased from here on."""

    customer_id: str


def erasure_of(key: bytes | None) -> CustomerErased:
    """A tombstone's payload; ValueError if it has no key (then it names nobody)."""
    if not key:
        raise ValueError("empty message")
    return CustomerErased(key.decode())


class ErasedCustomers:
    """The ids of erased customers, as a worker knows them (refreshed before each batch)."""

    def __init__(self) -> None:
        self.ids: frozenset[str] = frozenset()
        self._version: bytes | None = None

    async def refresh(self, redis: Redis) -> None:
        version = await redis.get(ERASED_VERSION)
        if version == self._version:
            return
        ids = await redis.hkeys(ERASED)
        self.ids = frozenset(i.decode() for i in ids)
        self._version = version
