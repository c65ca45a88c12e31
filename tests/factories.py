"""Valid events to start tests from; each test changes only what it is about."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def event(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "type": "content.click",
        "source": "wecom",
        "occurred_at": (datetime.now(UTC) - timedelta(minutes=1)).isoformat(),
        "identities": {"wecom_external_userid": unique("wm")},
        "properties": {"content_id": "c-spec-001", "value_point": "rational", "topics": ["tech"]},
        "schema_version": 1,
    }
    return base | changes


def published(
    event_id: str, customer_id: str, kind: str, source: str, at: str, properties: dict[str, Any]
) -> dict[str, Any]:
    """An event as ingest publishes it on touchpoint.events.v1 (for feeds written to the topic)."""
    return {
        "event_id": event_id,
        "type": kind,
        "source": source,
        "occurred_at": at,
        "identities": {"wecom_external_userid": f"wm-{customer_id}"},
        "properties": properties,
        "schema_version": 1,
        "customer_id": customer_id,
        "received_at": at,
        "api_key_id": "key-test",
    }
