"""The dealer network in Redis: stores (`pd:campaign:stores`) and consultants
(`pd:campaign:consultants`), each a versioned hash changed over the API (and kept in the audit
trail); running workers poll the two versions and take up a changed roster within seconds."""

from __future__ import annotations

from redis.asyncio import Redis

from shared.redis import KEY_PREFIX
from shared.versioned_hash import VersionedHash

from .dealers import Consultant, Roster, Store

STORES = VersionedHash(f"{KEY_PREFIX}campaign:stores", "store")
CONSULTANTS = VersionedHash(f"{KEY_PREFIX}campaign:consultants", "consultant")

RosterVersion = tuple[int, int]


async def roster_version(redis: Redis) -> RosterVersion:
    pipe = redis.pipeline(transaction=False)
    pipe.get(STORES.version_key)
    pipe.get(CONSULTANTS.version_key)
    stores, consultants = await pipe.execute()
    return int(stores or 0), int(consultants or 0)


async def load_roster(redis: Redis) -> tuple[RosterVersion, Roster]:
    store_version, stores = await STORES.load(redis)
    consultant_version, consultants = await CONSULTANTS.load(redis)
    roster = Roster.of(
        (Store.model_validate_json(s) for s in stores),
        (Consultant.model_validate_json(c) for c in consultants),
    )
    return (store_version, consultant_version), roster
