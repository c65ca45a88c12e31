"""Campaign definitions in Redis (`pd:campaign:campaigns`), versioned: the API changes them,
running workers poll the version and take them up."""

from __future__ import annotations

from redis.asyncio import Redis

from shared.redis import KEY_PREFIX
from shared.versioned_hash import VersionedHash

from .definitions import Campaign

CAMPAIGNS = VersionedHash(f"{KEY_PREFIX}campaign:campaigns", "campaign")


async def load_campaigns(redis: Redis) -> tuple[int, list[Campaign]]:
    version, documents = await CAMPAIGNS.load(redis)
    return version, sorted((Campaign.model_validate_json(d) for d in documents), key=lambda c: c.id)
