"""Redis helpers. Every key the project writes starts with `pd:`."""

from __future__ import annotations

from collections.abc import Callable

from redis.asyncio import Redis

KEY_PREFIX = "pd:"


def create_redis(url: str) -> Redis:
    # Short timeouts: a Redis that does not answer must turn into a 503, not a hung request.
    return Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2, health_check_interval=30)


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
