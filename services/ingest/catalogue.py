"""Ingest keeps the content catalogue (shared/contents.py) in memory, reloaded when it changed."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared.contents import Catalogue

log = logging.getLogger(__name__)


async def keep_catalogue(
    catalogue: Catalogue, redis: Redis, interval_s: float, on_version: Callable[[int], None]
) -> None:
    """Poll the catalogue's version every `interval_s`; reload it when it moved. Polled rather
    than read per request: one GET a second instead of one per request on the hot path."""
    while True:
        try:
            if await catalogue.refresh(redis):
                on_version(catalogue.version)
                log.info("content catalogue %d: %d contents", catalogue.version, len(catalogue.contents))
        except (RedisError, OSError, ValidationError, ValueError) as error:  # kept as it was; next poll
            log.warning("could not reload the content catalogue: %r", error)
        await asyncio.sleep(interval_s)
