"""Dealer co-incubation: the dealer network, which consultant gets a lead, and when a lead is late.

The network is data ops manage over the campaign API (`/v1/dealers/...`): stores (a dealer's
showroom: id, city, brand) and their consultants (store, daily capacity, active, models they
sell). A lead goes to an active consultant of the customer's own store (known from `store.visit`
or any event naming `dealer_id`), else of a store in the customer's city, else of any store, in
round-robin order within each group, skipping consultants who reached their daily capacity; within
each group, consultants selling the car model the customer is most interested in come first. A
lead nobody can take waits in the lead pool (desk.py) until capacity frees: the next China day,
or a consultant added. If no `dealer.followup` arrives within the campaign's SLA, the lead is
reassigned to another consultant and the miss is counted against the first (journey.py decides,
desk.py records).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from .targeting import CHINA

DealerId = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")


class Store(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = DealerId
    city: str = Field(min_length=1, max_length=64, description="as events name it in `city`")
    brand: str = Field(min_length=1, max_length=64)
    name: str | None = Field(default=None, max_length=200)
    schema_version: Literal[1] = 1


class Consultant(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = DealerId
    store_id: str = DealerId
    daily_capacity: int = Field(default=20, ge=1, le=10_000, description="new leads a China day")
    active: bool = Field(default=True, description="an inactive consultant gets no new leads")
    name: str | None = Field(default=None, max_length=200)
    models: list[Annotated[str, Field(min_length=1, max_length=128)]] = Field(
        default_factory=list,
        max_length=50,
        description="car models they sell best: a lead for one goes to them first within each group",
    )
    schema_version: Literal[1] = 1


@dataclass(frozen=True)
class Roster:
    """The dealer network in force: stores by id, consultants by id."""

    stores: Mapping[str, Store] = field(default_factory=dict)
    consultants: Mapping[str, Consultant] = field(default_factory=dict)

    @classmethod
    def of(cls, stores: Iterable[Store], consultants: Iterable[Consultant]) -> Roster:
        return cls({s.id: s for s in stores}, {c.id: c for c in consultants})

    def city_of(self, consultant: Consultant) -> str | None:
        store = self.stores.get(consultant.store_id)
        return store.city if store is not None else None

    def store_of(self, consultant_id: str | None) -> str | None:
        consultant = self.consultants.get(consultant_id or "")
        return consultant.store_id if consultant is not None else None


@dataclass(frozen=True, slots=True)
class Desk:
    """Today's assignments per consultant and the round-robin position per group."""

    day: str = ""
    loads: Mapping[str, int] = field(default_factory=dict)
    cursors: Mapping[str, int] = field(default_factory=dict)


def assign(
    roster: Roster,
    desk: Desk,
    store_id: str | None,
    city: str | None,
    now: datetime,
    exclude: frozenset[str] = frozenset(),
    model: str | None = None,
) -> tuple[str | None, Desk]:
    """The consultant for a lead (None if everyone suitable is full) and the desk after it."""
    today = now.astimezone(CHINA).date().isoformat()
    loads = dict(desk.loads) if desk.day == today else {}
    cursors = dict(desk.cursors)
    for group_key, group in _groups(roster, store_id, city, model):
        start = cursors.get(group_key, 0)
        for step in range(len(group)):
            consultant = group[(start + step) % len(group)]
            if consultant.id in exclude or loads.get(consultant.id, 0) >= consultant.daily_capacity:
                continue
            loads[consultant.id] = loads.get(consultant.id, 0) + 1
            cursors[group_key] = (start + step + 1) % len(group)
            return consultant.id, Desk(today, loads, cursors)
    return None, Desk(today, loads, cursors)


def _groups(
    roster: Roster, store_id: str | None, city: str | None, model: str | None = None
) -> list[tuple[str, list[Consultant]]]:
    """The customer's store, their city (the store's, when the customer named none), everyone;
    within each, first those who sell the customer's car model when it is known."""
    active = sorted((c for c in roster.consultants.values() if c.active), key=lambda c: c.id)
    store = roster.stores.get(store_id or "")
    city = city or (store.city if store is not None else None)
    groups = []
    if store_id:
        groups.append((f"store:{store_id}", [c for c in active if c.store_id == store_id]))
    if city:
        groups.append((f"city:{city}", [c for c in active if roster.city_of(c) == city]))
    groups.append(("all", active))
    if model:
        groups = [
            preferred
            for key, group in groups
            for preferred in ((f"{key}|model:{model}", [c for c in group if model in c.models]), (key, group))
        ]
    return [(key, group) for key, group in groups if group]


def sla_missed(
    assigned_at: datetime, sla_hours: float, followed_up_at: datetime | None, now: datetime
) -> bool:
    """True once the SLA has passed without a follow-up after the assignment."""
    if followed_up_at is not None and followed_up_at >= assigned_at:
        return False
    return (now - assigned_at).total_seconds() >= sla_hours * 3600
