"""Dealer co-incubation: which consultant gets a lead, and what happens when nobody follows up.

A lead goes to a consultant of the customer's own dealer, else of their city, else anyone, in
round-robin order, skipping consultants who reached their daily capacity. If no
`dealer.followup` arrives within the campaign's SLA, the lead is reassigned to another
consultant and the miss is counted against the first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from .targeting import CHINA


class Consultant(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, max_length=64)
    dealer_id: str = Field(min_length=1, max_length=64)
    city: str = Field(min_length=1, max_length=64)
    daily_capacity: int = Field(default=20, ge=1, le=10_000)


@dataclass(frozen=True, slots=True)
class Desk:
    """Today's assignments per consultant and the round-robin position per pool."""

    day: str = ""
    loads: Mapping[str, int] = field(default_factory=dict)
    cursors: Mapping[str, int] = field(default_factory=dict)


def assign(
    roster: list[Consultant],
    desk: Desk,
    dealer_id: str | None,
    city: str | None,
    now: datetime,
    exclude: frozenset[str] = frozenset(),
) -> tuple[str | None, Desk]:
    """The consultant for a lead (None if everyone suitable is full) and the desk after it."""
    today = now.astimezone(CHINA).date().isoformat()
    loads = dict(desk.loads) if desk.day == today else {}
    cursors = dict(desk.cursors)
    for pool_key, pool in _pools(roster, dealer_id, city):
        start = cursors.get(pool_key, 0)
        for step in range(len(pool)):
            consultant = pool[(start + step) % len(pool)]
            if consultant.id in exclude or loads.get(consultant.id, 0) >= consultant.daily_capacity:
                continue
            loads[consultant.id] = loads.get(consultant.id, 0) + 1
            cursors[pool_key] = (start + step + 1) % len(pool)
            return consultant.id, Desk(today, loads, cursors)
    return None, Desk(today, loads, cursors)


def _pools(
    roster: list[Consultant], dealer_id: str | None, city: str | None
) -> list[tuple[str, list[Consultant]]]:
    ordered = sorted(roster, key=lambda c: c.id)
    pools = []
    if dealer_id:
        pools.append((f"dealer:{dealer_id}", [c for c in ordered if c.dealer_id == dealer_id]))
    if city:
        pools.append((f"city:{city}", [c for c in ordered if c.city == city]))
    pools.append(("all", ordered))
    return [(key, pool) for key, pool in pools if pool]


def sla_missed(
    assigned_at: datetime, sla_hours: float, followed_up_at: datetime | None, now: datetime
) -> bool:
    """True once the SLA has passed without a follow-up after the assignment."""
    if followed_up_at is not None and followed_up_at >= assigned_at:
        return False
    return (now - assigned_at).total_seconds() >= sla_hours * 3600
