"""Documents ops manage through an API (tag rules, campaigns), versioned as a whole in Redis.

`<key>` is a hash id -> JSON document; `<key>:version` goes up with every change, in the same
step (a Lua script), so a worker polling the version sees the documents that came with it.
"""

from __future__ import annotations

from typing import Literal

from redis.asyncio import Redis

Mode = Literal["create", "replace", "put", "delete"]

# ARGV: id, document ("" for delete), mode. Returns the new version, or -1 when the mode's
# condition fails: create needs a new id, replace and delete an existing one, put either.
_CHANGE = """
local exists = redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1
local mode = ARGV[3]
if (mode == 'create' and exists) or ((mode == 'replace' or mode == 'delete') and not exists) then
  return -1
end
if mode == 'delete' then
  redis.call('HDEL', KEYS[1], ARGV[1])
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
return redis.call('INCR', KEYS[2])
"""


class VersionConflict(Exception):
    """The change's condition failed: the id exists (create) or does not (replace, delete)."""


class VersionedHash:
    def __init__(self, key: str) -> None:
        self.key = key
        self.version_key = f"{key}:version"

    async def current_version(self, redis: Redis) -> int:
        """The version alone (0: never changed), for a worker to tell whether to load again."""
        return int(await redis.get(self.version_key) or 0)

    async def load(self, redis: Redis) -> tuple[int, list[bytes]]:
        """The version and every document, read together."""
        pipe = redis.pipeline(transaction=True)
        pipe.get(self.version_key)
        pipe.hvals(self.key)
        version, documents = await pipe.execute()
        return int(version or 0), documents

    async def change(self, redis: Redis, mode: Mode, document_id: str, document: str = "") -> int:
        """Apply one change; returns the new version. VersionConflict if its condition fails."""
        version = int(await redis.eval(_CHANGE, 2, self.key, self.version_key, document_id, document, mode))
        if version < 0:
            raise VersionConflict(document_id)
        return version
