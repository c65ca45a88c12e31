"""Redis helpers. Every key the project writes starts with `pd:`."""

from __future__ import annotations

from redis.asyncio import Redis

KEY_PREFIX = "pd:"


def create_redis(url: str) -> Redis:
    # Short timeouts: a Redis that does not answer must turn into a 503, not a hung request.
    return Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2, health_check_interval=30)
