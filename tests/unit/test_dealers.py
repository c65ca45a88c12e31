"""The dealer network as data and who gets a lead (dealers.py); roster files (pd-roster)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from pydantic import ValidationError

from services.campaign.dealers import Consultant, Desk, Roster, Store, assign, sla_missed
from services.campaign.roster_cli import RosterFile, read_roster
from stack.demo import demo_roster

DAY = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)  # 10:00 in China

ROSTER = Roster.of(
    [
        Store(id="d-sh-1", city="shanghai", brand="demo"),
        Store(id="d-sh-2", city="shanghai", brand="demo"),
        Store(id="d-bj-1", city="beijing", brand="demo"),
    ],
    [
        Consultant(id="sh-1-a", store_id="d-sh-1", daily_capacity=2),
        Consultant(id="sh-1-b", store_id="d-sh-1", daily_capacity=2),
        Consultant(id="sh-1-c", store_id="d-sh-1", daily_capacity=5, active=False),
        Consultant(id="sh-2-a", store_id="d-sh-2", daily_capacity=1),
        Consultant(id="bj-1-a", store_id="d-bj-1", daily_capacity=1),
    ],
)


def test_leads_go_round_robin_to_the_customers_store_then_city_then_anyone_active() -> None:
    desk, picked = Desk(), []
    for _ in range(6):
        who, desk = assign(ROSTER, desk, "d-sh-1", "shanghai", DAY)
        picked.append(who)
    # sh-1-c is inactive: never picked, though it has capacity.
    assert picked == ["sh-1-a", "sh-1-b", "sh-1-a", "sh-1-b", "sh-2-a", "bj-1-a"]
    who, desk = assign(ROSTER, desk, "d-sh-1", "shanghai", DAY)
    assert who is None  # everyone active is at capacity today
    who, _ = assign(ROSTER, desk, "d-sh-1", "shanghai", DAY + timedelta(days=1))
    assert who is not None  # capacity is per China day


def test_a_customers_store_gives_their_city_when_they_named_none() -> None:
    desk = Desk(loads={"sh-1-a": 2, "sh-1-b": 2}, day="2026-11-25")  # the store is full today
    who, _ = assign(ROSTER, desk, "d-sh-1", None, DAY)
    assert who == "sh-2-a"  # the same city's other store, not Beijing
    who, _ = assign(ROSTER, Desk(), None, "beijing", DAY)
    assert who == "bj-1-a"
    who, _ = assign(ROSTER, Desk(), "d-unknown", None, DAY)
    assert who == "bj-1-a"  # an unknown store and no city: anyone, in id order


def test_nobody_at_all_is_none_and_an_excluded_consultant_is_skipped() -> None:
    assert assign(Roster(), Desk(), "d-sh-1", "shanghai", DAY)[0] is None
    first, desk = assign(ROSTER, Desk(), "d-sh-1", None, DAY)
    second, _ = assign(ROSTER, desk, "d-sh-1", None, DAY, exclude=frozenset({first or ""}))
    assert second not in (first, None)


def test_a_lead_for_a_car_model_goes_first_to_whoever_sells_it_within_each_group() -> None:
    sellers = Roster.of(
        ROSTER.stores.values(),
        [
            *(c for c in ROSTER.consultants.values() if c.id != "sh-1-b" and c.id != "sh-2-a"),
            Consultant(id="sh-1-b", store_id="d-sh-1", daily_capacity=1, models=["G6", "G9"]),
            Consultant(id="sh-2-a", store_id="d-sh-2", daily_capacity=1, models=["G6"]),
        ],
    )
    desk, picked = Desk(), []
    for _ in range(4):
        who, desk = assign(sellers, desk, "d-sh-1", "shanghai", DAY, model="G6")
        picked.append(who)
    # The store's seller first; full, the store's others before the city's seller: the store
    # still comes first, the model only orders within a group.
    assert picked == ["sh-1-b", "sh-1-a", "sh-1-a", "sh-2-a"]
    assert assign(sellers, Desk(), "d-sh-1", None, DAY, model="P7")[0] == "sh-1-a"  # nobody sells it


def test_sla_missed_only_without_a_follow_up_after_the_assignment() -> None:
    assert sla_missed(DAY, 24, None, DAY + timedelta(hours=25))
    assert not sla_missed(DAY, 24, DAY + timedelta(hours=3), DAY + timedelta(hours=25))
    assert not sla_missed(DAY, 24, None, DAY + timedelta(hours=23))
    assert sla_missed(DAY, 24, DAY - timedelta(hours=1), DAY + timedelta(hours=25))  # before: not for it


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"id": "a b", "store_id": "s"}, "String should match pattern"),
        ({"id": "a", "store_id": "s", "daily_capacity": 0}, "greater than or equal to 1"),
        ({"id": "a", "store_id": "s", "dealer_id": "s"}, "Extra inputs are not permitted"),
    ],
)
def test_invalid_consultants_are_refused_with_reasons(document: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Consultant.model_validate(document)


def test_a_roster_file_is_checked_whole_before_anything_is_sent(tmp_path: Path) -> None:
    store = {"id": "s1", "city": "wuhan", "brand": "demo"}
    good = {"stores": [store], "consultants": [{"id": "c1", "store_id": "s1"}]}
    path = tmp_path / "roster.json"
    path.write_bytes(orjson.dumps(good))
    assert read_roster(path).consultants[0].daily_capacity == 20  # the default
    for bad, message in (
        (
            good | {"consultants": [{"id": "c1", "store_id": "s2"}]},
            "consultants of stores not in the file: s2",
        ),
        (good | {"stores": [store, store]}, "store ids given twice: s1"),
    ):
        with pytest.raises(ValidationError, match=message):
            RosterFile.model_validate(bad)


def test_the_demo_roster_is_a_valid_network_of_twelve_consultants() -> None:
    roster = demo_roster()
    assert len(roster.consultants) == 12 and len({c.store_id for c in roster.consultants}) == 6
    assert all(c.active for c in roster.consultants)
