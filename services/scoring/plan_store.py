"""The scoring plan in Redis: the API replaces it, running workers poll it and apply it.

`pd:scoring:plan` holds `{"version", "updated_at", "plan"}`; version 0 is the default plan from
the repository, in force until someone replaces it. A replacement takes a new version atomically.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict
from redis.asyncio import Redis

from shared.audit import AUDIT, AUDIT_LUA, AUDIT_MAX, Editor
from shared.redis import KEY_PREFIX
from shared.versioned_hash import StaleVersion

from .plan import ScoringPlan, default_plan

PLAN_KEY = f"{KEY_PREFIX}scoring:plan"
VERSION_KEY = f"{KEY_PREFIX}scoring:plan:version"

# Version, document and audit entry change together, or not at all. ARGV: plan, updated_at,
# expected version ("": any), holder, role, audit cap. Returns the new version, or -1 - the
# current one when the expected version is not it.
_SAVE = (
    AUDIT_LUA
    + """
local current = tonumber(redis.call('GET', KEYS[2]) or '0')
if ARGV[3] ~= '' and tonumber(ARGV[3]) ~= current then
  return -1 - current
end
local version = redis.call('INCR', KEYS[2])
local document = '{"version":' .. version .. ',"updated_at":"' .. ARGV[2] .. '","plan":' .. ARGV[1] .. '}'
redis.call('SET', KEYS[1], document)
audit(KEYS[3], ARGV[6], ARGV[2], ARGV[4], ARGV[5], 'scoring_plan', 'plan', 'update', version, ARGV[1])
return version
"""
)


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


async def save_plan(
    redis: Redis, plan: ScoringPlan, editor: Editor, if_match: int | None = None
) -> VersionedPlan:
    """A new version of the plan, kept in the audit trail. StaleVersion if `if_match` is given
    and is not the version in force."""
    updated_at = datetime.now(UTC)
    document = plan.model_dump_json()
    expected = "" if if_match is None else str(if_match)
    args = (document, updated_at.isoformat(), expected, editor.holder, editor.role, AUDIT_MAX)
    version = int(await redis.eval(_SAVE, 3, PLAN_KEY, VERSION_KEY, AUDIT, *args))
    if version < 0:
        raise StaleVersion("plan", -1 - version)
    return VersionedPlan(version=version, updated_at=updated_at, plan=plan)
