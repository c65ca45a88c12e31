"""Points as currency: a campaign's grant_points action becomes a `points.granted` event.

The campaign worker publishes it on `touchpoint.events.v1`, keyed by the customer, in the same
send as the action (acknowledged before its batch is): scoring credits it like any event, in
order with the customer's other inputs. Its event id is the action's, derived from the trigger,
so a replay after a crash publishes the same id and scoring's ledger credits it once
(docs/campaign.md, "Points").
"""

from __future__ import annotations

from typing import Any

import orjson

from shared.topics import TOUCHPOINT_EVENTS

from .definitions import ActionKind
from .read_model import ActionRecord

KEY_ID = "campaign-worker"  # api_key_id of the events the worker publishes itself


def points_granted(actions: list[ActionRecord]) -> list[tuple[str, bytes, bytes]]:
    """(topic, key, value) of the points.granted event of each sent grant_points action."""
    granted = []
    for action in actions:
        if action.kind != ActionKind.grant_points.value or action.outcome != "sent" or not action.points:
            continue
        at = action.at.isoformat()
        event: dict[str, Any] = {
            "event_id": action.action_id,
            "type": "points.granted",
            "source": "campaign",
            "occurred_at": at,
            "identities": {},
            "properties": {
                "points": action.points,
                "action_id": action.action_id,
                "campaign_id": action.campaign_id,
            },
            "schema_version": 1,
            "customer_id": action.customer_id,
            "received_at": at,
            "api_key_id": KEY_ID,
        }
        granted.append((TOUCHPOINT_EVENTS, action.customer_id.encode(), orjson.dumps(event)))
    return granted
