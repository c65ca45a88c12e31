"""The scoring plan in Redis: the API replaces it, running workers poll it and apply it.

`pd:scoring:plan` holds `{"version", "updated_at", "plan"}`; version 0 is the default plan from
the repository, in force until someone replaces it. A replacement takes a new version atomically.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict
from redis.asyncio import Redis

from shared.redis import KEY_PREFIX

from .plan import ScoringPlan, default_plan

PLAN_KEY = f"{KEY_PREFIX}scoring:plan"
VERSION_KEY = f"{KEY_PREFIX}scoring:plan:version"

# Version and document change together, or not at all.
_SAVE = """
local version = redis.call('INCR', KEYS[2])
local document = '{"version":' .. version .. ',"updated_at":"' .. ARGV[2] .. '","plan":' .. ARGV[1] .. '}'
redis.call('SET', KEYS[1], document)
return version
"""


class VersionedPlan(BaseModel):
    model_config = ConfigDict(frozen=True)

    version: int
    updated_at: datetime | None
    plan: ScoringPlan


async def plan_version(redis: Redis) -> int:
    """The version in force (0: the default plan), without reading the plan."""
    return int(await redis.get(VERSION_KEY) or 0)


async def load_plan(redis: Redis) -> VersionedPlan:
    raw = await redis.get(PLAN_KEY)
    if raw is None:
        return VersionedPlan(version=0, updated_at=None, plan=default_plan())
    return VersionedPlan.model_validate_json(raw)


async def save_plan(redis: Redis, plan: ScoringPlan) -> VersionedPlan:
    updated_at = datetime.now(UTC)
    document = plan.model_dump_json()
    version = await redis.eval(_SAVE, 2, PLAN_KEY, VERSION_KEY, document, updated_at.isoformat())
    return VersionedPlan(version=int(version), updated_at=updated_at, plan=plan)
