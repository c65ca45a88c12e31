"""Funnel figures by cohort (funnel_figures.py), kept in Redis as counts of distinct customers
(distinct_counts.py), one per cohort day, group and figure:

- `funnel:{day}:{by}:{value}:{figure}`: the customers of the day's cohort in that group (a source,
  a dealer) who reached the figure (a milestone, or both milestones of a pair);
- `funnel:values:{by}`: the groups seen, so a query knows what to read without a scan.

A period's figure is the count of the union of its days' keys (PFCOUNT of many keys): nothing is
scanned, and a query costs one command per group and figure.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta

from pydantic import BaseModel, Field
from redis.asyncio import Redis

from .funnel import MILESTONES
from .funnel_figures import PAIRS, RATES, By, FunnelTouch
from .read_model import PREFIX

MAX_DAYS = 366  # a query's period, at most


def figure_key(day: str, by: By, value: str, figure: str) -> str:
    return f"{PREFIX}funnel:{day}:{by}:{value}:{figure}"


def values_key(by: By) -> str:
    return f"{PREFIX}funnel:values:{by}"


def touch_members(touches: Iterable[FunnelTouch]) -> list[tuple[str, str]]:
    return [(figure_key(t.day, t.by, t.value, t.figure), t.customer_id) for t in touches]


def group_names(touches: Iterable[FunnelTouch]) -> list[tuple[str, str]]:
    """The groups the touches name (a few sources; the dealers), to remember."""
    return [(values_key(t.by), t.value) for t in touches]


class FunnelGroup(BaseModel):
    value: str = Field(description="the source, or the dealer (store id)")
    customers: dict[str, int] = Field(
        description="customers of the cohort who reached each milestone (±0.8%)"
    )
    both: dict[str, int] = Field(description="customers who reached both milestones of each pair")
    rates: dict[str, float | None] = Field(description="in percent; null when the denominator is 0")


def _days(start: date, end: date) -> list[str]:
    return [(start + timedelta(days=n)).isoformat() for n in range((end - start).days + 1)]


FIGURES = (*MILESTONES, *sorted(PAIRS))


async def funnel_groups(
    redis: Redis, by: By, start: date, end: date
) -> tuple[FunnelGroup, list[FunnelGroup]]:
    """All customers' figures (`all`: every customer has one source, so the union over sources
    counts each once) and every group's, for the cohorts of the days `start` to `end`."""
    values = sorted(v.decode() for v in await redis.smembers(values_key(by)))
    sources = sorted(v.decode() for v in await redis.smembers(values_key("source")))
    days = _days(start, end)
    pipe = redis.pipeline(transaction=False)
    for figure in FIGURES:
        keys = [figure_key(day, "source", source, figure) for day in days for source in sources]
        pipe.pfcount(*(keys or [figure_key("none", "source", "none", figure)]))
    for value in values:
        for figure in FIGURES:
            pipe.pfcount(*(figure_key(day, by, value, figure) for day in days))
    counts = await pipe.execute()
    width = len(FIGURES)
    total = _group("all", counts[:width])
    groups = [_group(value, counts[(n + 1) * width : (n + 2) * width]) for n, value in enumerate(values)]
    return total, groups


def _group(value: str, counts: list[int]) -> FunnelGroup:
    mine = dict(zip(FIGURES, counts, strict=True))
    rates = {
        name: round(100.0 * mine[top] / mine[bottom], 2) if mine[bottom] else None
        for name, top, bottom in RATES
    }
    return FunnelGroup(
        value=value,
        customers={m: mine[m] for m in MILESTONES},
        both={p: mine[p] for p in sorted(PAIRS)},
        rates=rates,
    )
