"""What every API route over a versioned document does (shared/versioned_hash.py): read one with
its ETag (404 if absent), and apply a change as an ops holder, answering 404 for a replace or
delete of nothing, 409 for an existing id on create and for a stale If-Match."""

from __future__ import annotations

from datetime import datetime

from fastapi import HTTPException, Response, status
from redis.asyncio import Redis

from shared.http import Edit, etag, stale_version
from shared.versioned_hash import Mode, StaleVersion, VersionConflict, VersionedHash


async def read_one(
    redis: Redis, documents: VersionedHash, what: str, item_id: str, response: Response
) -> bytes:
    """The document, its version as the response's ETag; 404 if there is none."""
    found = await documents.get(redis, item_id)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no {what} {item_id!r}")
    version, document = found
    response.headers["ETag"] = etag(version)
    return document


async def apply_change(
    redis: Redis,
    documents: VersionedHash,
    what: str,
    mode: Mode,
    item_id: str,
    document: str,
    edit: Edit,
    response: Response | None = None,
    at: datetime | None = None,
) -> int:
    """Apply the change as `edit` says (who, If-Match); the item's new version, also set as the
    response's ETag when a response is given."""
    try:
        changed = await documents.change(
            redis, mode, item_id, document, editor=edit.editor, if_match=edit.if_match, at=at
        )
    except VersionConflict:
        if mode == "create":
            raise HTTPException(
                status.HTTP_409_CONFLICT, f"{what} {item_id!r} exists: PUT to change it"
            ) from None
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no {what} {item_id!r}") from None
    except StaleVersion as stale:
        raise stale_version(f"{what} {item_id!r}", stale.current) from None
    if response is not None:
        response.headers["ETag"] = etag(changed.item_version)
    return changed.item_version
