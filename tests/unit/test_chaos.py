"""The fault suite (stack/chaos.py): what counts as lost and as duplicated; which faults run."""

from __future__ import annotations

from services.campaign.decide import action_id
from stack.chaos import Figures, PhaseResult, Posted, figures_of, phases_for, table

CAMPAIGN = "chaos-test"


def accepted(event_id: str, customer_id: str, refusals: int = 0) -> Posted:
    return Posted(event_id, 0, "key", refusals, customer_id)


def test_every_accepted_event_with_its_action_and_point_is_neither_lost_nor_duplicated() -> None:
    phase = PhaseResult(
        "no fault", 1.5, [accepted("e1", "c1"), accepted("e2", "c1", 2), Posted("e3", 0, "k")]
    )
    actions = {"c1": {action_id(CAMPAIGN, "c1", "e1"), action_id(CAMPAIGN, "c1", "e2")}}
    assert figures_of(phase, actions, {"c1": 2}, CAMPAIGN) == Figures(3, 2, 2, 0, 0, 1.5)


def test_a_missing_action_or_point_is_lost_and_an_extra_point_duplicated() -> None:
    phase = PhaseResult(
        "broker stalled", None, [accepted("e1", "c1"), accepted("e2", "c1"), accepted("e3", "c2")]
    )
    only_one = {"c1": {action_id(CAMPAIGN, "c1", "e1")}, "c2": {action_id(CAMPAIGN, "c2", "e3")}}
    figures = figures_of(phase, only_one, {"c1": 1, "c2": 2}, CAMPAIGN)
    assert (figures.lost, figures.duplicated) == (1, 1)
    # Every action there, a point short: the grant was never credited.
    every = {
        "c1": {action_id(CAMPAIGN, "c1", e) for e in ("e1", "e2")},
        "c2": {action_id(CAMPAIGN, "c2", "e3")},
    }
    assert figures_of(phase, every, {"c1": 1, "c2": 1}, CAMPAIGN).lost == 1


def test_the_table_has_a_row_per_fault() -> None:
    text = table(
        [("no fault", Figures(10, 10, 0, 0, 0, None)), ("ingest killed", Figures(9, 9, 3, 0, 0, 2.25))]
    )
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["fault", "posted", "accepted"]
    assert lines[2].split() == ["ingest", "killed", "9", "9", "3", "0", "0", "2.2"]


def test_the_broker_restart_runs_alone_on_the_durable_broker_and_never_on_the_memory_one() -> None:
    in_memory = [name for name, _ in phases_for(durable_broker=False, without=frozenset())]
    assert "broker restarted" not in in_memory
    assert {"no fault", "Redis restarted", "scoring worker killed", "broker stalled 30 s"} <= set(in_memory)
    assert [name for name, _ in phases_for(True, frozenset())] == ["no fault", "broker restarted"]
    assert "Redis restarted" not in [name for name, _ in phases_for(False, frozenset({"redis-restart"}))]
