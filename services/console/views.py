"""Pure shaping of the ops APIs' answers into what the pages and charts show. No HTTP here:
routes fetch, these functions arrange, templates and console.js draw."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from shared.scores import Activity, Band

CHINA = timezone(timedelta(hours=8), "CST")  # Asia/Shanghai: no daylight saving time

BANDS = tuple(band.value for band in reversed(Band))  # hottest first, as the matrix is read
ACTIVITIES = tuple(activity.value for activity in Activity)
LAYERS = ("prospect", "intent", "defeated", "owner")
ORIENTATIONS = ("rational", "emotional", "unknown")
STAGES = ("newcomer", "active_fan", "die_hard_fan")
FUNNEL_STEPS = ("friend_added", "lead", "test_drive", "order")
OUTCOMES = ("sent", "deferred", "suppressed")

Namer = Callable[[str, str | None], str]


def heatmap(matrix: Mapping[str, Any], name: Namer) -> dict[str, Any]:
    """The lead concentration matrix as rows (bands, hottest first) x columns (activities)."""
    cells = matrix.get("cells", {})
    rows = [[int(cells.get(band, {}).get(activity, 0)) for activity in ACTIVITIES] for band in BANDS]
    return {
        "rows": [name("band", b) for b in BANDS],
        "columns": [name("activity", a) for a in ACTIVITIES],
        "row_keys": list(BANDS),
        "column_keys": list(ACTIVITIES),
        "counts": rows,
        "total": int(matrix.get("total", sum(map(sum, rows)))),
        "max": max((n for row in rows for n in row), default=0),
    }


def ladder(view: Mapping[str, Any], name: Namer) -> dict[str, Any]:
    cells = view.get("cells", {})
    rows = [[int(cells.get(layer, {}).get(o, 0)) for o in ORIENTATIONS] for layer in LAYERS]
    return {
        "rows": [name("layer", layer) for layer in LAYERS],
        "columns": [name("orientation", o) for o in ORIENTATIONS],
        "counts": rows,
        "total": int(view.get("total", sum(map(sum, rows)))),
        "max": max((n for row in rows for n in row), default=0),
    }


def funnel(view: Mapping[str, Any], name: Namer) -> list[dict[str, Any]]:
    """The steps in order, each with its share of the step before (None for the first, or after 0)."""
    reached = {step["step"]: int(step["customers"]) for step in view.get("steps", [])}
    steps: list[dict[str, Any]] = []
    previous: int | None = None
    for step in FUNNEL_STEPS:
        customers = reached.get(step, 0)
        rate = customers / previous if previous else None
        steps.append({"step": step, "label": name("step", step), "customers": customers, "of_previous": rate})
        previous = customers
    return steps


def events_per_minute(view: Mapping[str, Any]) -> dict[str, Any]:
    """Minutes (HH:MM, oldest first) and one series per source, busiest source first."""
    minutes: Sequence[Mapping[str, Any]] = view.get("minutes", [])
    totals: dict[str, int] = {}
    for minute in minutes:
        for source, n in minute.get("by_source", {}).items():
            totals[source] = totals.get(source, 0) + int(n)
    sources = sorted(totals, key=lambda s: (-totals[s], s))
    return {
        "labels": [china_time(m.get("at"))[11:16] for m in minutes],  # HH:MM on the China clock
        "series": [
            {"name": s, "counts": [int(m.get("by_source", {}).get(s, 0)) for m in minutes]} for s in sources
        ],
        "total": sum(totals.values()),
    }


def actions_today(view: Mapping[str, Any], name: Namer) -> dict[str, Any]:
    """Campaigns (most actions first) x outcomes."""
    campaigns: Mapping[str, Mapping[str, Any]] = view.get("campaigns", {})
    ids = sorted(campaigns, key=lambda c: (-sum(int(campaigns[c].get(o, 0)) for o in OUTCOMES), c))
    return {
        "date": view.get("date"),
        "campaigns": ids,
        "outcomes": [name("outcome", o) for o in OUTCOMES],
        "outcome_keys": list(OUTCOMES),
        "counts": [[int(campaigns[c].get(o, 0)) for o in OUTCOMES] for c in ids],
    }


def china_time(value: str | None) -> str:
    """An API's ISO time shown as China time (the APIs answer in UTC or in the event's own
    offset): one clock on every page."""
    if not value:
        return "—"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    if moment.tzinfo is None:
        return moment.strftime("%Y-%m-%d %H:%M:%S")
    return moment.astimezone(CHINA).strftime("%Y-%m-%d %H:%M:%S")


def split_tags(text: str | None) -> list[str]:
    """ "a, b,,c" -> ["a", "b", "c"]: how the forms take lists of tags."""
    return [part.strip() for part in (text or "").replace("，", ",").split(",") if part.strip()]
