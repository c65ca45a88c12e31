"""The clock, inside the stream: what comes due for a customer later is released by a tick.

A worker that schedules something for a customer (campaign: deferred messages, delayed triggers,
SLA checks; scoring: the moment decay alone moves a band or an activity) keeps it in the
customer's row and the customer's next due time in a Redis sorted set. A timer turns due
customers into `Tick` records on the worker's own ticks topic, keyed by customer, which the
worker takes like any other input: in order with the customer's inputs, under the ledger, so a
tick is applied once and a crash replays it like anything else. Only customers with something
due are ever looked at: nothing scans every customer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError

from shared.fold import Tick
from shared.kafka import BulkSender, OutgoingRecord

__all__ = ["Tick", "Ticker", "due_customers", "schedule"]

log = logging.getLogger(__name__)


def schedule(pipe: Pipeline, due_key: str, due: Mapping[str, datetime | None]) -> None:
    """Queue each customer's next due time (None: nothing due) on a Redis pipeline."""
    next_due = {customer: at.timestamp() for customer, at in due.items() if at is not None}
    if next_due:
        pipe.zadd(due_key, next_due)
    if gone := [customer for customer, at in due.items() if at is None]:
        pipe.zrem(due_key, *gone)


async def due_customers(redis: Redis, due_key: str, now: datetime, limit: int = 5000) -> list[str]:
    members = await redis.zrangebyscore(due_key, "-inf", now.timestamp(), start=0, num=limit)
    return [m.decode() for m in members]


class Ticker:
    """Sends a tick to every customer whose due time has come, at most every `again_s` each
    (a tick in flight has not moved the due time yet)."""

    def __init__(
        self,
        redis: Redis,
        due_key: str,
        topic: str,
        sender: BulkSender,
        clock: Callable[[], datetime],
        *,
        kind: str,
        again_s: float = 30.0,
    ) -> None:
        self._redis = redis
        self._due_key = due_key
        self._topic = topic
        self._sender = sender
        self._clock = clock
        self._kind = kind  # in tick ids: ticks of two workers never share an id downstream
        self._again_s = again_s
        self._ticked: dict[str, float] = {}  # customer -> monotonic time of the last tick sent

    async def tick(self) -> int:
        """One round; how many ticks were sent."""
        now = self._clock()
        try:
            due = await due_customers(self._redis, self._due_key, now)
        except (RedisError, OSError) as error:
            log.warning("could not read due customers: %r", error)
            return 0
        clock = time.monotonic()
        fresh = [c for c in due if clock - self._ticked.get(c, -self._again_s) >= self._again_s]
        if not fresh:
            return 0
        stamp = int(now.timestamp())
        records = [
            OutgoingRecord(
                self._topic,
                customer.encode(),
                Tick(tick_id=f"{self._kind}:{customer}:{stamp}", customer_id=customer)
                .model_dump_json()
                .encode(),
            )
            for customer in fresh
        ]
        for refused in await self._sender.send_all(records):  # a tick is ids alone: never, in practice
            log.error("the broker will not take a tick: %s", refused.reason)
        self._ticked.update(dict.fromkeys(fresh, clock))
        if len(self._ticked) > 100_000:  # forget old entries now and then
            self._ticked = {c: t for c, t in self._ticked.items() if clock - t < self._again_s}
        return len(records)
