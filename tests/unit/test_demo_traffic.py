"""The demo's traffic source: realistic, valid, deterministic, and it exercises merges."""

from datetime import UTC, datetime

import pytest

from services.ingest.identities import protect_event
from shared.events import InvalidEvent, validate_event
from stack.traffic import flawed_events, in_time_order, journeys

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def test_every_journey_event_is_valid_and_none_is_in_the_future() -> None:
    events = in_time_order(journeys(100, seed=3, now=NOW))
    for raw in events:
        parsed = validate_event(raw, NOW)
        assert parsed.occurred_at <= NOW
    assert len({raw["event_id"] for raw in events}) == len(events)
    times = [datetime.fromisoformat(raw["occurred_at"]) for raw in events]
    assert times == sorted(times)


def test_the_same_seed_gives_the_same_events() -> None:
    first = [e["event_id"] for j in journeys(20, seed=5, now=NOW) for e in j.events]
    again = [e["event_id"] for j in journeys(20, seed=5, now=NOW) for e in j.events]
    other = [e["event_id"] for j in journeys(20, seed=6, now=NOW) for e in j.events]
    assert first == again != other


def test_journeys_go_down_the_funnel_and_link_identifiers_later() -> None:
    events = in_time_order(journeys(300, seed=7, now=NOW))
    types = {raw["type"] for raw in events}
    assert {"ad.click", "wecom.friend_added", "content.click", "test_drive.booked", "order.placed"} <= types
    assert {"rational", "emotional"} <= {raw["properties"].get("value_point") for raw in events}
    assert any(len(raw["identities"]) >= 2 for raw in events)


@pytest.mark.parametrize("index", range(3))
def test_flawed_events_are_each_rejected(index: int) -> None:
    with pytest.raises(InvalidEvent):
        raw = flawed_events(seed=7, now=NOW)[index]
        dumped = validate_event(raw, NOW).model_dump(mode="json")
        protect_event(dumped["identities"], dumped["properties"], "salt")
