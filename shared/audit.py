"""Who changed what, and when: one audit trail for every document ops edit through an API
(campaigns, tag rules, the scoring plan, the dealer roster).

A Redis stream `pd:audit`, capped at about AUDIT_MAX entries (the oldest go first). Entries are
appended by the same Lua script that makes the change (`AUDIT_LUA`), so a change is never
without its entry, nor an entry without its change. `GET /v1/audit` (campaign API) reads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import orjson
from pydantic import BaseModel, Field
from redis.asyncio import Redis

from shared.redis import KEY_PREFIX

AUDIT = f"{KEY_PREFIX}audit"
AUDIT_MAX = 10_000

# A Lua function for the scripts that change documents: append one entry to the trail.
AUDIT_LUA = """
local function audit(stream, maxlen, at, holder, role, kind, item, change, version, document)
  redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'at', at, 'holder', holder,
    'role', role, 'kind', kind, 'item', item, 'change', change, 'version', version,
    'document', document)
end
"""

Kind = Literal["campaign", "tag_rule", "scoring_plan", "store", "consultant", "content"]
Change = Literal["create", "update", "delete"]


@dataclass(frozen=True)
class Editor:
    """Who makes a change: the ops token's holder and role (shared/ops_roles.py)."""

    holder: str
    role: str


SYSTEM = Editor("system", "admin")  # changes made by the platform itself (e.g. examples loaded by a script)


class AuditEntry(BaseModel):
    entry_id: str = Field(description="the entry's position in the trail; newer entries sort after")
    at: datetime
    holder: str = Field(description="who made the change: the ops token's holder")
    role: str
    kind: Kind
    item: str = Field(description="the id of the campaign, tag rule, store or consultant; `plan`")
    change: Change
    version: int = Field(description="the item's version after the change (an ETag for If-Match)")
    document: dict[str, Any] | None = Field(description="the item after the change; null if deleted")


async def read_audit(
    redis: Redis,
    *,
    kind: str | None = None,
    item: str | None = None,
    holder: str | None = None,
    limit: int = 100,
    before: str | None = None,
) -> list[AuditEntry]:
    """The newest entries first that match every filter given, at most `limit`; `before`: an
    entry id, to page on from there. The trail is capped, so a filtered read is bounded too."""
    entries: list[AuditEntry] = []
    high = f"({before}" if before else "+"
    while len(entries) < limit:
        page = await redis.xrevrange(AUDIT, max=high, min="-", count=500)
        if not page:
            break
        for entry_id, fields in page:
            entry = _entry(entry_id, fields)
            if (
                (kind and entry.kind != kind)
                or (item and entry.item != item)
                or (holder and entry.holder != holder)
            ):
                continue
            entries.append(entry)
            if len(entries) == limit:
                break
        high = f"({page[-1][0].decode()}"
    return entries


def _entry(entry_id: bytes, fields: dict[bytes, bytes]) -> AuditEntry:
    text = {k.decode(): v.decode() for k, v in fields.items()}
    document = text.get("document") or ""
    return AuditEntry(
        entry_id=entry_id.decode(),
        at=datetime.fromisoformat(text["at"]),
        holder=text["holder"],
        role=text["role"],
        kind=text["kind"],  # type: ignore[arg-type]
        item=text["item"],
        change=text["change"],  # type: ignore[arg-type]
        version=int(text["version"]),
        document=orjson.loads(document) if document else None,
    )
