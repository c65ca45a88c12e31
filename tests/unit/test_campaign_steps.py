"""Journeys: campaigns of steps (wait, act, branch, exit), validated as data and run per customer
(issue 17, item 2). Pure: the journey functions with an injected `now`."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from services.campaign.batch import JourneyRecord, merge_journeys
from services.campaign.consent import Consent
from services.campaign.definitions import Campaign
from services.campaign.examples import example_journeys
from services.campaign.inputs import CampaignEvent
from services.campaign.journey import (
    MAX_RUNS,
    Context,
    Journey,
    Reaction,
    new_journey,
    on_broadcast,
    on_event,
    on_input,
    on_tick,
)
from services.campaign.stats import steps_of
from services.campaign.targeting import QuietHours
from shared.chain import ChainInput, ProfileSnapshot
from shared.record_table import RecordCodec
from tests.factories import read_event, score_snapshot

DAY = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)  # 10:00 in China
NEVER_QUIET = QuietHours(time(0, 0), time(0, 0))
WECOM = {"wecom_1v1": Consent(True, DAY - timedelta(days=1))}


def nurture(**changes: Any) -> Campaign:
    """Send, then branch on a click within two days: thanks for who clicks, a nudge for who not."""
    definition = {
        "id": "nurture",
        "name": "Nurture",
        "trigger": {"on": "event", "value": "test_drive.booked"},
        "steps": [
            {"kind": "action", "name": "hello", "action": send("c-hello")},
            {"kind": "branch", "name": "clicked", "when": {"event": "content.click"}, "within_hours": 48,
             "then": "thanks", "otherwise": "nudge"},
            {"kind": "action", "name": "nudge", "next": "done", "action": send("c-nudge")},
            {"kind": "action", "name": "thanks", "action": send("c-thanks")},
            {"kind": "exit", "name": "done"},
        ],
        "frequency_cap": {"per_customer_per_day": 5},
    }  # fmt: skip
    return Campaign.model_validate(definition | changes)


def send(content: str) -> dict[str, Any]:
    return {"kind": "send_content", "channel": "wecom_1v1", "content": {"default": content}}


def context(campaigns: list[Campaign], at: datetime = DAY) -> Context:
    return Context(campaigns=campaigns, now=at, quiet=NEVER_QUIET)


def customer() -> Journey:
    journey = new_journey("cus_1")
    return replace(journey, view=replace(journey.view, consents=WECOM))


def happened(kind: str, at: datetime = DAY, event_id: str | None = None, **properties: Any) -> CampaignEvent:
    return read_event(CampaignEvent, kind, at, event_id=event_id, **properties)


def sent(reaction: Reaction) -> list[tuple[str | None, str | None]]:
    return [(d.step, d.content_id) for d in reaction.decisions if d.outcome == "sent"]


def marks(reaction: Reaction) -> list[str]:
    return [figure for _, figure, _ in reaction.figures]


def entered(campaign: Campaign, journey: Journey | None = None, event_id: str = "e-1") -> Reaction:
    trigger = happened("test_drive.booked", event_id=event_id)
    return on_event(journey or customer(), trigger, context([campaign]))


def test_entering_acts_on_the_first_step_and_waits_at_the_branch() -> None:
    campaign = nurture()
    reaction = entered(campaign)
    assert sent(reaction) == [("hello", "c-hello")]
    assert marks(reaction) == ["entered:default", "step:hello:reached", "step:clicked:reached"]
    (run,) = reaction.journey.runs
    assert (run.step, run.until) == ("clicked", DAY + timedelta(hours=48))
    assert reaction.journey.next_due == DAY + timedelta(hours=48)
    # The same trigger again (a replay) decides the same action ids.
    assert [d.action_id for d in entered(campaign).decisions] == [d.action_id for d in reaction.decisions]


def test_a_click_in_time_takes_the_then_branch_and_the_run_completes() -> None:
    campaign = nurture()
    waiting = entered(campaign).journey
    later = DAY + timedelta(hours=47)
    clicked = on_event(
        waiting, happened("content.click", later, content_id="c-hello"), context([campaign], later)
    )
    assert sent(clicked) == [("thanks", "c-thanks")]
    assert marks(clicked) == [
        "step:clicked:then",
        "step:thanks:reached",
        "step:done:reached",
        "step:done:exited:completed",
    ]
    assert clicked.journey.runs == ()
    first = entered(campaign).decisions[0]
    assert clicked.decisions[0].action_id != first.action_id  # one action id per step


def test_no_click_in_time_takes_the_otherwise_branch_when_the_time_is_up() -> None:
    campaign = nurture()
    waiting = entered(campaign).journey
    assert on_tick(waiting, context([campaign], DAY + timedelta(hours=47))).decisions == []
    due = DAY + timedelta(hours=48)
    nudged = on_tick(waiting, context([campaign], due))
    assert sent(nudged) == [("nudge", "c-nudge")]
    assert marks(nudged)[:2] == ["step:clicked:otherwise", "step:nudge:reached"]
    assert "step:thanks:reached" not in marks(nudged)  # `next` skips it
    assert nudged.journey.runs == () and nudged.journey.next_due is None
    # A click after the time is up finds no branch waiting.
    late = on_event(nudged.journey, happened("content.click", due), context([campaign], due))
    assert late.decisions == []


def test_a_conversion_ends_the_run_where_it_waits() -> None:
    campaign = nurture()
    waiting = entered(campaign).journey
    visit = on_event(
        waiting, happened("store.visit", DAY + timedelta(hours=1), dealer_id="d-1"), context([campaign])
    )
    assert visit.journey.runs == ()
    assert marks(visit) == ["step:clicked:exited:converted"]
    assert on_tick(visit.journey, context([campaign], DAY + timedelta(hours=48))).decisions == []
    # Unless the journey keeps converted customers in it.
    keeps = nurture(exit_on_conversion=False)
    stays = on_event(entered(keeps).journey, happened("store.visit", dealer_id="d-1"), context([keeps]))
    assert len(stays.journey.runs) == 1


def test_the_event_that_enters_a_branch_does_not_settle_it() -> None:
    campaign = nurture(trigger={"on": "event", "value": "content.click"})
    reaction = on_event(customer(), happened("content.click"), context([campaign]))
    assert sent(reaction) == [("hello", "c-hello")]
    assert [r.step for r in reaction.journey.runs] == ["clicked"]


def test_a_tag_or_band_the_customer_already_has_settles_a_branch_at_once() -> None:
    steps = [
        {"kind": "action", "name": "hello", "action": send("c-hello")},
        {
            "kind": "branch",
            "name": "ripple",
            "when": {"tag": "ripple"},
            "within_hours": 0,
            "otherwise": "done",
        },
        {"kind": "action", "name": "referral", "action": send("c-referral")},
        {"kind": "exit", "name": "done"},
    ]
    campaign = nurture(steps=steps)
    spreader = customer()
    spreader = replace(spreader, view=replace(spreader.view, tags=frozenset({"ripple"})))
    assert sent(entered(campaign, spreader)) == [("hello", "c-hello"), ("referral", "c-referral")]
    assert sent(entered(campaign)) == [("hello", "c-hello")]  # within 0 hours: otherwise, at once
    hot = [
        *steps[:1],
        {"kind": "branch", "name": "hot", "when": {"band": "hot"}, "within_hours": 24},
        *steps[2:],
    ]
    waiting = entered(nurture(steps=hot)).journey
    score = score_snapshot("hot")
    warmed = on_input(
        waiting, ChainInput(input_id="s-1", customer_id="cus_1", score=score), context([nurture(steps=hot)])
    )
    assert sent(warmed) == [("referral", "c-referral")] and "step:hot:then" in marks(warmed)


def test_a_wait_step_waits_and_the_run_moves_on_at_its_end() -> None:
    steps = [
        {"kind": "wait", "name": "cooldown", "hours": 72},
        {"kind": "action", "name": "recall", "action": send("c-recall")},
    ]
    campaign = nurture(steps=steps)
    waiting = entered(campaign)
    assert waiting.decisions == [] and waiting.journey.next_due == DAY + timedelta(hours=72)
    assert on_tick(waiting.journey, context([campaign], DAY + timedelta(hours=71))).decisions == []
    recalled = on_tick(waiting.journey, context([campaign], DAY + timedelta(hours=72)))
    assert sent(recalled) == [("recall", "c-recall")]
    assert marks(recalled)[-1] == "step:recall:exited:completed"


def test_who_is_in_a_journey_or_entered_it_before_does_not_enter_again() -> None:
    campaign = nurture()
    waiting = entered(campaign).journey
    again = entered(campaign, waiting, event_id="e-2")
    assert [(d.outcome, d.reason) for d in again.decisions] == [("suppressed", "already_entered")]
    done = on_tick(waiting, context([campaign], DAY + timedelta(hours=48))).journey
    assert [d.reason for d in entered(campaign, done, event_id="e-3").decisions] == ["already_entered"]
    always = nurture(reentry="always")
    assert sent(entered(always, done, event_id="e-4")) == [("hello", "c-hello")]


def test_the_holdout_is_measured_from_entry_and_gets_no_step() -> None:
    campaign = nurture(holdout_pct=100)
    held = entered(campaign)
    (decision,) = held.decisions
    assert (decision.outcome, decision.reason, decision.variant) == ("suppressed", "holdout", "holdout")
    assert decision.content_id is None and held.journey.runs == ()
    order = on_event(held.journey, happened("order.placed", vehicle_model="g6"), context([campaign]))
    assert [(c.campaign_id, c.group) for c in order.conversions] == [("nurture", "holdout")]


def test_a_treated_customer_converts_for_the_journey_from_entry_on() -> None:
    steps = [
        {"kind": "wait", "name": "cooldown", "hours": 72},
        {"kind": "action", "name": "recall", "action": send("c")},
    ]
    campaign = nurture(steps=steps)
    waiting = entered(campaign).journey  # nothing sent yet
    order = on_event(waiting, happened("order.placed", vehicle_model="g6"), context([campaign]))
    assert [(c.campaign_id, c.group) for c in order.conversions] == [("nurture", "default")]


def test_leaving_the_audience_pausing_and_removing_a_step_end_runs() -> None:
    campaign = nurture(audience={"layers": ["prospect"]})
    waiting = entered(campaign).journey
    owner = ProfileSnapshot(layer="owner", orientation="rational", stage="newcomer", tags=[])
    left = on_input(
        waiting, ChainInput(input_id="p-1", customer_id="cus_1", profile=owner), context([campaign])
    )
    assert left.journey.runs == () and marks(left) == ["step:clicked:exited:left_audience"]

    paused = nurture(status="paused")
    due = DAY + timedelta(hours=48)
    inactive = on_tick(entered(campaign).journey, context([paused], due))
    assert inactive.decisions == [] and marks(inactive) == ["step:clicked:exited:campaign_inactive"]
    assert inactive.journey.runs == ()

    changed = nurture(steps=[{"kind": "action", "name": "hello", "action": send("c-hello")}])
    removed = on_tick(entered(campaign).journey, context([changed], due))
    assert marks(removed) == ["step:clicked:exited:step_removed"] and removed.journey.runs == ()

    gone = on_tick(entered(campaign).journey, context([], due))
    assert gone.journey.runs == () and gone.figures == [] and gone.decisions == []


def test_a_broadcast_can_start_a_journey() -> None:
    broadcast = nurture(trigger={"on": "scheduled", "value": "2026-11-25T10:00:00+08:00"})
    reaction = on_broadcast(customer(), "nurture", "broadcast:nurture:x", context([broadcast]))
    assert sent(reaction) == [("hello", "c-hello")] and len(reaction.journey.runs) == 1


def test_a_customer_is_in_at_most_max_runs_journeys() -> None:
    campaigns = [nurture(id=f"j{n}") for n in range(MAX_RUNS + 1)]
    reaction = on_event(customer(), happened("test_drive.booked"), context(campaigns))
    assert len(reaction.journey.runs) == MAX_RUNS
    refused = [d for d in reaction.decisions if d.outcome == "suppressed"]
    assert [d.reason for d in refused] == ["schedule_full"]


def test_an_assign_dealer_step_schedules_its_own_sla() -> None:
    steps = [
        {
            "kind": "action",
            "name": "dealer",
            "action": {"kind": "assign_dealer", "channel": "dealer", "sla_hours": 6},
        }
    ]
    reaction = entered(nurture(steps=steps))
    (decision,) = reaction.decisions
    assert (decision.step, decision.sla_hours) == ("dealer", 6)
    (check,) = reaction.journey.scheduled
    assert (check.kind, check.due) == ("sla", DAY + timedelta(hours=6))
    missed = on_tick(reaction.journey, context([nurture(steps=steps)], DAY + timedelta(hours=6)))
    ((_, again),) = missed.reassignments
    assert (again.step, again.sla_hours) == ("dealer", 6)


def test_runs_survive_the_changelog_and_come_along_in_a_merge() -> None:
    waiting = entered(nurture()).journey
    codec = RecordCodec(JourneyRecord)
    assert codec.decode(codec.encode(JourneyRecord(journey=waiting))).journey == waiting
    merged = merge_journeys(customer(), waiting)
    assert merged.runs == waiting.runs
    both = merge_journeys(waiting, replace(waiting, runs=(replace(waiting.runs[0], run_id="other"),)))
    assert both.runs == waiting.runs  # one run per journey: the survivor's


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"action": send("c")}, "exactly one of the two"),
        ({"steps": []}, "exactly one of the two"),
        ({"steps": [{"kind": "wait", "name": "w", "hours": 1}]}, "at least one action step"),
        ({"steps": [{"kind": "action", "name": "a", "action": send("c")}] * 2}, "unique"),
        ({"steps": [{"kind": "action", "name": "a", "next": "z", "action": send("c")}]}, "not a step"),
        (
            {"steps": [{"kind": "action", "name": "a", "action": send("c")},
                       {"kind": "wait", "name": "w", "hours": 1, "next": "a"}]},
            "only moves forward",
        ),
        ({"steps": [{"kind": "branch", "name": "b", "when": {}, "within_hours": 1}]}, "exactly one of event"),
        (
            {"steps": [{"kind": "branch", "name": "b", "when": {"event": "x.y"}, "within_hours": 1}]},
            "unknown event",
        ),
        ({"steps": [{"kind": "teleport", "name": "t"}]}, "kind"),
        (
            {"steps": [{"kind": "action", "name": "a", "action": {
                "kind": "send_content", "channel": "wecom_1v1",
                "variants": [{"name": "x", "weight": 1, "content": {"default": "c"}}]}}]},
            "not variants",
        ),
    ],
)  # fmt: skip
def test_an_invalid_journey_is_refused_with_its_reason(changes: dict[str, Any], reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        nurture(**changes)


def test_the_shipped_journeys_are_valid_and_cover_every_kind_of_step() -> None:
    journeys = example_journeys()
    assert len(journeys) == 4 and len({j.id for j in journeys}) == 4
    kinds = {step.kind for j in journeys for step in j.steps}
    assert kinds == {"wait", "action", "branch", "exit"}
    actions = {step.action.kind for j in journeys for step in j.steps if step.kind == "action"}
    assert actions == {"send_content", "invite_group", "assign_dealer", "grant_points"}


def test_step_figures_come_in_the_steps_order_then_those_no_longer_defined() -> None:
    figures = {
        "step:b:reached": 3,
        "step:b:then": 1,
        "step:b:otherwise": 1,
        "step:b:exited:converted": 1,
        "step:a:reached": 4,
        "step:a:sent": 4,
        "step:a:suppressed:no_consent": 1,
        "step:old:reached": 2,
        "sent:default": 4,
    }
    steps = steps_of(figures, ["a", "b", "c"])
    assert [s.step for s in steps] == ["a", "b", "c", "old"]
    a, b, c, _ = steps
    assert (a.reached, a.sent, a.suppressed) == (4, 4, {"no_consent": 1})
    assert (b.then, b.otherwise, b.exited) == (1, 1, {"converted": 1})
    assert c.reached == 0
