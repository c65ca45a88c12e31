"""Tag rules in Redis: the API adds, changes and deletes them; running workers poll and apply.

`pd:tagging:rules` is a hash tag -> rule JSON; `pd:tagging:rules:version` goes up with every
change, in the same step (a Lua script), so a worker that sees a new version sees its rules.
"""

from __future__ import annotations

from redis.asyncio import Redis

from shared.redis import KEY_PREFIX

from .rules import RuleSet, TagRule

RULES_KEY = f"{KEY_PREFIX}tagging:rules"
VERSION_KEY = f"{KEY_PREFIX}tagging:rules:version"

# ARGV: tag, rule JSON ("" deletes), mode ("create" | "put" | "delete").
# Returns the new version, or -1 when creating an existing tag / deleting a missing one.
_CHANGE = """
local exists = redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1
if (ARGV[3] == 'create' and exists) or (ARGV[3] == 'delete' and not exists) then
  return -1
end
if ARGV[3] == 'delete' then
  redis.call('HDEL', KEYS[1], ARGV[1])
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
return redis.call('INCR', KEYS[2])
"""


class RuleConflict(Exception):
    """Creating a tag that has a rule, or deleting one that has none."""


async def load_rules(redis: Redis) -> RuleSet:
    pipe = redis.pipeline(transaction=True)
    pipe.get(VERSION_KEY)
    pipe.hvals(RULES_KEY)
    version, raws = await pipe.execute()
    return RuleSet.of(int(version or 0), (TagRule.model_validate_json(raw) for raw in raws))


async def change_rule(redis: Redis, mode: str, tag: str, rule: TagRule | None = None) -> int:
    """Create, put (create or replace) or delete one rule; returns the new rules version."""
    document = rule.model_dump_json() if rule is not None else ""
    version = int(await redis.eval(_CHANGE, 2, RULES_KEY, VERSION_KEY, tag, document, mode))
    if version < 0:
        raise RuleConflict(tag)
    return version
