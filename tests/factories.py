"""Valid events to start tests from; each test changes only what it is about."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from shared.chain import ScoreSnapshot
from shared.events import PublishedEvent

E = TypeVar("E", bound=PublishedEvent)

BAND_PCT = {"low": 10.0, "medium": 40.0, "high": 70.0, "hot": 90.0}


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


def read_event(
    as_read: type[E],
    kind: str,
    at: datetime,
    customer_id: str = "cus_1",
    event_id: str | None = None,
    **properties: Any,
) -> E:
    """An event as a worker reads it (`as_read`: its event model), received when it occurred."""
    return as_read(
        event_id=event_id or str(uuid.uuid4()),
        customer_id=customer_id,
        type=kind,
        source="wecom",
        occurred_at=at,
        received_at=at,
        properties=properties,
    )


def score_snapshot(band: str, top_model: str | None = None) -> ScoreSnapshot:
    """A score on the chain in `band` (at a percentage inside it), active this week."""
    return ScoreSnapshot(
        intent_score=1.0,
        intent_pct=BAND_PCT[band],
        band=band,
        activity="active_7d",
        points=0,
        growth=0,
        level="member",
        top_model=top_model,
    )


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
