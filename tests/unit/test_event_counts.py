"""Ingest's events per minute: which minutes a window holds and where each minute is counted."""

from datetime import UTC, datetime, timedelta, timezone
from itertools import pairwise

from services.ingest.event_counts import EventsPerMinute, MinuteCount, minute_key, window

NOW = datetime(2026, 12, 1, 10, 15, 42, 123456, tzinfo=UTC)


def test_a_window_is_every_minute_up_to_the_current_one_oldest_first() -> None:
    minutes = window(NOW, 60)
    assert len(minutes) == 60
    assert minutes[-1] == datetime(2026, 12, 1, 10, 15, tzinfo=UTC)  # the current minute, begun
    assert minutes[0] == datetime(2026, 12, 1, 9, 16, tzinfo=UTC)
    assert all(later - earlier == timedelta(minutes=1) for earlier, later in pairwise(minutes))
    assert window(NOW, 1) == [datetime(2026, 12, 1, 10, 15, tzinfo=UTC)]


def test_a_window_across_midnight_and_from_another_timezone_is_in_utc() -> None:
    china = NOW.astimezone(timezone(timedelta(hours=8))).replace(hour=8, minute=0)  # 00:00 UTC
    assert window(china, 2) == [datetime(2026, 11, 30, 23, 59, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)]


def test_every_moment_of_a_minute_counts_in_the_same_hash_whatever_its_timezone() -> None:
    start = datetime(2026, 12, 1, 10, 15, tzinfo=UTC)
    assert minute_key(start) == "pd:ingest:minute:2026-12-01T10:15"
    assert minute_key(start + timedelta(seconds=59.999)) == minute_key(start)
    assert minute_key(start.astimezone(timezone(timedelta(hours=8)))) == minute_key(start)
    assert minute_key(start + timedelta(minutes=1)) != minute_key(start)


def test_minutes_are_written_with_their_utc_offset() -> None:
    body = EventsPerMinute(minutes=[MinuteCount(at=window(NOW, 1)[0], by_source={"wecom": 12})])
    assert body.model_dump(mode="json") == {
        "minutes": [{"at": "2026-12-01T10:15:00+00:00", "by_source": {"wecom": 12}}]
    }
