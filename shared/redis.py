"""Redis helpers. Every key the project writes starts with `pd:`."""

from __future__ import annotations

from collections.abc import Callable

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

KEY_PREFIX = "pd:"


def create_redis(url: str) -> Redis:
    # Short timeouts: a Redis that does not answer must turn into a 503, not a hung request.
    # Quick retries on a fresh connection (redis-py's default waits up to 10 s between them): a
    # command then succeeds or fails within a readiness check's time, instead of being cancelled
    # by it while reconnecting, which left connections unusable after a Redis restart.
    retry = Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), retries=3)
    return Redis.from_url(
        url, socket_timeout=5, socket_connect_timeout=2, health_check_interval=30, retry=retry
    )


async def indexed_set_sizes(redis: Redis, index: str, key_of: Callable[[str], str]) -> dict[str, int]:
    """Figures kept as sets (counted by SCARD) with an index set of their names: every name in
    `index` and the size of its set `key_of(name)`, in two round trips and without a scan."""
    names = sorted(n.decode() for n in await redis.smembers(index))
    if not names:
        return {}
    pipe = redis.pipeline(transaction=False)
    for name in names:
        pipe.scard(key_of(name))
    return dict(zip(names, (int(n) for n in await pipe.execute()), strict=True))
