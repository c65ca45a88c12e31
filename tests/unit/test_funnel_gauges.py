"""Tagging's funnel gauges are read off the scrape's path: a scrape never waits for Redis after
the first, and the gauges follow the reads."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime

from prometheus_client import CollectorRegistry
from redis.exceptions import ConnectionError as RedisConnectionError

from services.tagging.funnel_routes import funnel_gauges
from services.tagging.funnel_stats import FunnelGroup


class Totals:
    """A hand-written `read_total`: answers the rate it is told, when it is let go."""

    def __init__(self) -> None:
        self.reads: list[tuple[date, date]] = []
        self.lead_to_deal = 10.0
        self.go = asyncio.Event()
        self.go.set()
        self.fail = False

    async def __call__(self, start: date, end: date) -> FunnelGroup:
        self.reads.append((start, end))
        await self.go.wait()
        if self.fail:
            raise RedisConnectionError("down")
        return FunnelGroup(value="all", customers={}, both={}, rates={"lead_to_deal": self.lead_to_deal})


def test_a_scrape_waits_only_for_the_first_read_and_the_gauges_follow_the_reads() -> None:
    async def check() -> None:
        registry, totals, now = CollectorRegistry(), Totals(), [0.0]
        clock = lambda: datetime(2026, 12, 2, tzinfo=UTC)  # noqa: E731
        refresh = funnel_gauges(totals, registry, clock, max_age_s=10, monotonic=lambda: now[0])

        def gauge() -> float | None:
            return registry.get_sample_value("pd_funnel_rate_percent", {"rate": "lead_to_deal"})

        async def settle() -> None:
            for _ in range(5):
                await asyncio.sleep(0)

        await refresh()  # the first: waited for
        assert gauge() == 10.0 and totals.reads == [(date(2026, 11, 3), date(2026, 12, 2))]
        totals.lead_to_deal, now[0] = 20.0, 5.0
        await refresh()  # 5 s old: as it is
        await settle()
        assert (gauge(), len(totals.reads)) == (10.0, 1)
        totals.go.clear()
        now[0] = 11.0
        await refresh()  # 11 s old: a read starts, and the scrape does not wait for it
        await settle()
        assert (gauge(), len(totals.reads)) == (10.0, 2)
        now[0] = 30.0
        await refresh()  # that read still runs: no second one
        await settle()
        assert len(totals.reads) == 2
        totals.go.set()
        await settle()
        assert gauge() == 20.0
        totals.fail, now[0] = True, 45.0
        await refresh()  # Redis down: the gauges keep the last read's values
        await settle()
        assert (gauge(), len(totals.reads)) == (20.0, 3)

    asyncio.run(check())
