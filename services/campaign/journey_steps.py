"""Multi-step campaigns (journeys): where a customer is in one, and what moves them on. Pure.

A journey is a campaign with `steps` instead of one `action` (definitions.py): wait, act,
branch on an event, tag or band within a time, exit. Entering it (journey.py) starts a `Run` at
its first step; `advance` moves the run as far as it can go now — through action steps (each
decided like any campaign's action, under its own action id), past waits that are over and
branches that are settled — and stops at a wait or a branch still waiting, or ends the run.
Steps only lead forward (validated), so a run always ends and one input moves it a bounded way.

Per-step figures (`Progress.marks`, read_model.py): `reached`, a branch's `then` and
`otherwise`, and where runs ended, `exited:<why>` (`completed` at an exit step or after the
last step; journey.py adds `converted`, `left_audience`, `campaign_inactive`, `step_removed`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .definitions import ActionStep, BranchStep, Campaign, Condition, ExitStep, Step, WaitStep
from .targeting import CustomerView

COMPLETED = "completed"
STEP_REMOVED = "step_removed"  # the definition was changed and the customer's step is gone


@dataclass(frozen=True, slots=True)
class Run:
    """A customer's way through a journey."""

    campaign_id: str
    run_id: str  # the entry's id: the steps' action ids derive from it
    step: str  # the step the customer is at, by name (definitions may change meanwhile)
    since: datetime  # when they reached it
    until: datetime | None = None  # a wait's end, a branch's deadline


@dataclass
class Progress:
    run: Run | None  # None: the run ended
    acts: list[tuple[ActionStep, str]] = field(default_factory=list)  # steps to act on, with trigger ids
    marks: list[tuple[str, str]] = field(default_factory=list)  # (step, figure)


def start(campaign: Campaign, run_id: str, customer: CustomerView, now: datetime) -> Progress:
    """A run entering the journey at its first step, moved as far as it goes now."""
    progress = Progress(None)
    return _go_on(campaign, _reach(campaign, 0, run_id, now, progress), customer, None, now, progress)


def advance(
    campaign: Campaign, run: Run, customer: CustomerView, event_type: str | None, now: datetime
) -> Progress:
    """Move a waiting run on, if the time has come or `event_type` (the input's event, if any)
    or the customer as they are now settles the branch it waits at."""
    progress = Progress(run)
    if campaign.step_index(run.step) is None:
        progress.run = None
        progress.marks.append((run.step, f"exited:{STEP_REMOVED}"))
        return progress
    return _go_on(campaign, run, customer, event_type, now, progress)


def trigger_id(run: Run, step: Step) -> str:
    """What an action step's decision is derived from: one action id per run and step."""
    return f"{run.run_id}:{step.name}"


def met(condition: Condition, customer: CustomerView, event_type: str | None) -> bool:
    if condition.event is not None:
        return event_type == condition.event
    if condition.tag is not None:
        return condition.tag in customer.tags
    return customer.band == condition.band


def _go_on(
    campaign: Campaign,
    run: Run,
    customer: CustomerView,
    event_type: str | None,
    now: datetime,
    progress: Progress,
) -> Progress:
    index = campaign.step_index(run.step)
    assert index is not None
    while True:
        step = campaign.steps[index]
        target: str | None
        if isinstance(step, WaitStep):
            if run.until is not None and now < run.until:
                break
            target = step.next
        elif isinstance(step, BranchStep):
            if met(step.when, customer, event_type):
                progress.marks.append((step.name, "then"))
                target = step.then
            elif run.until is None or now >= run.until:
                progress.marks.append((step.name, "otherwise"))
                target = step.otherwise
            else:
                break
        elif isinstance(step, ActionStep):
            progress.acts.append((step, trigger_id(run, step)))
            target = step.next
        else:
            assert isinstance(step, ExitStep)
            return _end(progress, step, COMPLETED)
        following = campaign.step_index(target) if target is not None else index + 1
        assert following is not None  # validated: targets are steps
        if following >= len(campaign.steps):
            return _end(progress, step, COMPLETED)
        index = following
        run = _reach(campaign, index, run.run_id, now, progress)
        event_type = None  # an event counts for the branch that waited for it, not for later ones
    progress.run = run
    return progress


def _end(progress: Progress, step: Step, why: str) -> Progress:
    progress.marks.append((step.name, f"exited:{why}"))
    progress.run = None
    return progress


def _reach(campaign: Campaign, index: int, run_id: str, now: datetime, progress: Progress) -> Run:
    step = campaign.steps[index]
    progress.marks.append((step.name, "reached"))
    hours = (
        step.hours
        if isinstance(step, WaitStep)
        else step.within_hours
        if isinstance(step, BranchStep)
        else None
    )
    until = now + timedelta(hours=hours) if hours is not None else None
    return Run(campaign.id, run_id, step.name, now, until)
