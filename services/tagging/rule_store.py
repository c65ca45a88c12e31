"""Tag rules in Redis (`pd:tagging:rules`, hash tag -> rule JSON), versioned: the API changes
them, running workers poll the version and re-derive their profiles under the new rules."""

from __future__ import annotations

from redis.asyncio import Redis

from shared.redis import KEY_PREFIX
from shared.versioned_hash import VersionedHash

from .rules import RuleSet, TagRule

RULES = VersionedHash(f"{KEY_PREFIX}tagging:rules", "tag_rule")


async def rules_version(redis: Redis) -> int:
    """The version in force, without reading the rules."""
    return await RULES.current_version(redis)


async def load_rules(redis: Redis) -> RuleSet:
    version, documents = await RULES.load(redis)
    return RuleSet.of(version, (TagRule.model_validate_json(d) for d in documents))
