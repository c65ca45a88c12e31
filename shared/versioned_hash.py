"""Documents ops manage through an API (tag rules, campaigns, stores, consultants), versioned in
Redis, each change kept in the audit trail (shared/audit.py).

`<key>` is a hash id -> JSON document; `<key>:version` goes up with every change, in the same
step (a Lua script), so a worker polling the version sees the documents that came with it.
`<key>:item-versions` holds each document's own version, for optimistic concurrency: a change
may name the version it edits (HTTP If-Match) and is refused if the document moved on. An item's
version keeps counting through a delete, so an ETag from before never matches what came after.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from redis.asyncio import Redis

from shared.audit import AUDIT, AUDIT_LUA, AUDIT_MAX, Editor, Kind

Mode = Literal["create", "replace", "put", "delete"]

# KEYS: documents, version, item versions, audit trail. ARGV: id, document ("" for delete), mode,
# expected item version ("": any), holder, role, kind, at, audit cap.
# Returns {version, item version}; {-1, 0} when the mode's condition fails (create needs a new
# id, replace and delete an existing one, put either); {-2, current} when the expected version
# is not the item's.
_CHANGE = (
    AUDIT_LUA
    + """
local id, mode, expected = ARGV[1], ARGV[3], ARGV[4]
local exists = redis.call('HEXISTS', KEYS[1], id) == 1
if (mode == 'create' and exists) or ((mode == 'replace' or mode == 'delete') and not exists) then
  return {-1, 0}
end
local current = tonumber(redis.call('HGET', KEYS[3], id) or '0')
if expected ~= '' and (not exists or tonumber(expected) ~= current) then
  return {-2, exists and current or 0}
end
local change = 'update'
if mode == 'delete' then
  redis.call('HDEL', KEYS[1], id)
  change = 'delete'
else
  if not exists then change = 'create' end
  redis.call('HSET', KEYS[1], id, ARGV[2])
end
local item_version = redis.call('HINCRBY', KEYS[3], id, 1)
audit(KEYS[4], ARGV[9], ARGV[8], ARGV[5], ARGV[6], ARGV[7], id, change, item_version, ARGV[2])
return {redis.call('INCR', KEYS[2]), item_version}
"""
)


class VersionConflict(Exception):
    """The change's condition failed: the id exists (create) or does not (replace, delete)."""


class StaleVersion(Exception):
    """The document is no longer at the version the change was made against (If-Match)."""

    def __init__(self, document_id: str, current: int) -> None:
        super().__init__(document_id, current)
        self.current = current


@dataclass(frozen=True)
class Changed:
    version: int  # of the whole set
    item_version: int  # of the document changed


class VersionedHash:
    def __init__(self, key: str, kind: Kind) -> None:
        self.key = key
        self.kind = kind
        self.version_key = f"{key}:version"
        self.item_versions_key = f"{key}:item-versions"

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

    async def get(self, redis: Redis, document_id: str) -> tuple[int, bytes] | None:
        """One document and its own version (its ETag), or None."""
        pipe = redis.pipeline(transaction=True)
        pipe.hget(self.key, document_id)
        pipe.hget(self.item_versions_key, document_id)
        document, version = await pipe.execute()
        return None if document is None else (int(version or 0), document)

    async def change(
        self,
        redis: Redis,
        mode: Mode,
        document_id: str,
        document: str = "",
        *,
        editor: Editor,
        if_match: int | None = None,
        at: datetime | None = None,
    ) -> Changed:
        """Apply one change and keep it in the audit trail. VersionConflict if the mode's
        condition fails; StaleVersion if `if_match` is given and is not the item's version."""
        when = (at or datetime.now(UTC)).isoformat()
        keys = (self.key, self.version_key, self.item_versions_key, AUDIT)
        expected = "" if if_match is None else str(if_match)
        args = (document_id, document, mode, expected, editor.holder, editor.role, self.kind, when, AUDIT_MAX)
        version, item_version = (int(n) for n in await redis.eval(_CHANGE, len(keys), *keys, *args))
        if version == -1:
            raise VersionConflict(document_id)
        if version == -2:
            raise StaleVersion(document_id, item_version)
        return Changed(version, item_version)
