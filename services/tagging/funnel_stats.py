"""Funnel figures by cohort (shared/funnels.py), read from Redis: counts of distinct customers
(shared/distinct_counts.py), one per cohort day, group and figure, kept by tagging (by source,
by dealer) and by campaign (by campaign):

- `funnel:{day}:{by}:{value}:{figure}`: the customers of the day's cohort in that group (a source,
  a campaign, a dealer) who reached the figure (a milestone, or both milestones of a pair);
- `funnel:values:{by}`: the groups seen, so a query knows what to read without a scan.

A period's figure is the count of the union of its days' keys (PFCOUNT of many keys): nothing is
scanned, and a query costs one command per group and figure.
"""

from __future__ import annotations

from datetime import date, timedelta

from pydantic import BaseModel, Field
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from shared.funnels import FIGURES, MILESTONES, PAIRS, RATES, By, figure_key, values_key

MAX_DAYS = 366  # a query's period, at most


class FunnelGroup(BaseModel):
    value: str = Field(description="the source, the campaign, or the dealer (store id)")
    customers: dict[str, int] = Field(
        description="customers of the cohort who reached each milestone (±0.8%)"
    )
    both: dict[str, int] = Field(description="customers who reached both milestones of each pair")
    rates: dict[str, float | None] = Field(description="in percent; null when the denominator is 0")


def _days(start: date, end: date) -> list[str]:
    return [(start + timedelta(days=n)).isoformat() for n in range((end - start).days + 1)]


async def funnel_total(redis: Redis, start: date, end: date) -> FunnelGroup:
    """All customers' figures alone (`all`), for the cohorts of the days `start` to `end`."""
    pipe = redis.pipeline(transaction=False)
    await _count_all(redis, pipe, _days(start, end))
    return _group("all", await pipe.execute())


async def funnel_groups(
    redis: Redis, by: By, start: date, end: date
) -> tuple[FunnelGroup, list[FunnelGroup]]:
    """All customers' figures (`all`) and every group's, for the cohorts of the days `start` to
    `end`."""
    values = sorted(v.decode() for v in await redis.smembers(values_key(by)))
    days = _days(start, end)
    pipe = redis.pipeline(transaction=False)
    await _count_all(redis, pipe, days)
    for value in values:
        for figure in FIGURES:
            pipe.pfcount(*(figure_key(day, by, value, figure) for day in days))
    counts = await pipe.execute()
    width = len(FIGURES)
    total = _group("all", counts[:width])
    groups = [_group(value, counts[(n + 1) * width : (n + 2) * width]) for n, value in enumerate(values)]
    return total, groups


async def _count_all(redis: Redis, pipe: Pipeline, days: list[str]) -> None:
    """Queue on `pipe` every figure over all customers: every customer has one source, so the
    union over the sources counts each once."""
    sources = sorted(v.decode() for v in await redis.smembers(values_key("source")))
    for figure in FIGURES:
        keys = [figure_key(day, "source", source, figure) for day in days for source in sources]
        pipe.pfcount(*(keys or [figure_key("none", "source", "none", figure)]))


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
