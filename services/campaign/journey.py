"""A customer's journey through the campaigns: what each input does, and what comes due later.

Pure: no Kafka, Faust, Redis or HTTP. Inputs are the customer's inputs along the enrichment
chain (shared/chain.py), each with the score and profile it led to, in the order ingest
accepted them: a touchpoint event (event triggers, consent, dealer and city, conversions,
dealer follow-ups) and what it moved (band_entered; layer_entered, tag_added), or a change of
another worker's own (a merged-in score or profile, new tag rules). Ticks of the clock release
what was scheduled: messages deferred by quiet hours, triggers delayed by a cooldown, and SLA
checks of leads handed to dealers.

A delayed trigger waits in `scheduled` and exits its campaign before its time, recorded as a
suppressed decision under the id it would have decided: `converted` when the customer converts
(CONVERSIONS) and the campaign has `exit_on_conversion`, `left_audience` when an input leaves
the customer outside the campaign's audience; at due time the audience is checked once more
(`left_audience` again).

Because every input arrives with the customer exactly as they were after it, a decision never
waits for a consent or a profile still on its way, and a conversion always finds the touches
before it already there (docs/causal-order.md).

Bounded (docs/contract.md, "Bounds"): a journey keeps at most MAX_SCHEDULED items waiting and
MAX_TOUCHES touches (the latest); pacing is bounded in decide.py. A delayed trigger fires on
every matching input until it acts, so a stream of inputs could schedule without end: past
MAX_SCHEDULED the items due last go first — delayed triggers, then deferred messages (SLA checks
of leads with dealers are kept longest) — each recorded as a suppressed decision,
`schedule_full`, under the action id it would have decided, so the figures show it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from shared.chain import ChainInput
from shared.dataclass_replace import replace
from shared.funnels import FunnelTouch, newly_counted

from . import journey_steps
from .consent import consents_after
from .dealers import sla_missed
from .decide import (
    GLOBAL_CONTROL,
    HOLDOUT,
    MAX_ENTERED,
    Decision,
    Pacing,
    action_id,
    bounded_pacing,
    decide,
    may_reenter,
)
from .definitions import ActionKind, Campaign, Channel, TriggerKind
from .inputs import CampaignEvent
from .journey_steps import Progress, Run
from .targeting import CHINA, CustomerView, QuietHours, fires, has_consent, in_audience, in_holdout

DEFAULT_SLA_HOURS = 24.0
CONVERSIONS = frozenset({"store.visit", "order.placed"})
DELIVERY_RESULTS = frozenset({"campaign.delivered", "campaign.failed"})
MAX_TOUCHES = 20
# Items waiting in a journey: a customer has a few (a deferred message, a cooldown, a lead's SLA
# check); a hundred is a customer something keeps triggering, and the row must stay small.
MAX_SCHEDULED = 100
# Journeys (multi-step campaigns) a customer is in at once: a few run side by side; more are
# refused at entry (`schedule_full`).
MAX_RUNS = 20
SCHEDULE_FULL = "schedule_full"
# Which waiting items go first when there are too many: the cheapest to lose first.
_DROP_FIRST = {"trigger": 0, "deliver": 1, "sla": 2}
# The programme as a whole, as a pseudo-campaign in the figures: its groups are the customers
# campaigns messaged and the global control group (docs/campaign.md, "Global control group").
PROGRAMME = "_programme"
PROGRAMME_TREATED = "treated"
PROGRAMME_CONTROL = "control"
# Why a delayed trigger left its campaign before acting (suppressed decisions), or a customer a
# journey before its end (per-step figures, `exited:<why>`).
CONVERTED = "converted"
LEFT_AUDIENCE = "left_audience"
CAMPAIGN_INACTIVE = "campaign_inactive"


@dataclass(frozen=True, slots=True)
class Scheduled:
    due: datetime
    kind: Literal["deliver", "trigger", "sla"]
    campaign_id: str
    trigger_id: str  # the input that fired the campaign (or the action id, for an SLA check)
    decision: Decision | None = None  # deliver: the deferred action; sla: the lead's hand-off


@dataclass(frozen=True, slots=True)
class Touch:
    """An action sent or deferred, or a holdout decision: what a later conversion is attributed to."""

    campaign_id: str
    variant: str | None
    at: datetime


@dataclass(frozen=True, slots=True)
class Conversion:
    campaign_id: str
    customer_id: str
    group: str  # the variant, "holdout", or "default" for a campaign without variants
    event_type: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Journey:
    view: CustomerView
    pacing: Pacing = field(default_factory=Pacing)
    dealer_id: str | None = None
    city: str | None = None
    scheduled: tuple[Scheduled, ...] = ()
    touches: tuple[Touch, ...] = ()
    last_followup_at: datetime | None = None
    runs: tuple[Run, ...] = ()  # the journeys (multi-step campaigns) the customer is in
    # Campaign -> the China day it first acted for the customer (holdout aside): their cohort
    # in the campaign's funnel (shared/funnels.py); the latest MAX_ENTERED campaigns.
    cohorts: Mapping[str, str] = field(default_factory=dict)

    @property
    def next_due(self) -> datetime | None:
        dues = [s.due for s in self.scheduled] + [r.until for r in self.runs if r.until is not None]
        return min(dues, default=None)


@dataclass(frozen=True)
class Context:
    """What every reaction needs besides the journey and the input."""

    campaigns: Sequence[Campaign]
    now: datetime
    quiet: QuietHours = field(default_factory=QuietHours)
    attribution_window: timedelta = timedelta(days=7)
    # Channel -> the most messages it may carry to one customer a day, all campaigns together.
    channel_caps: Mapping[str, int] = field(default_factory=dict)
    global_control_pct: float = 0.0
    # When the input being handled reached ingest: the time of the touches it leads to, so that
    # conversions (by their own received_at) are attributed in ingest's order of things.
    received_at: datetime | None = None


@dataclass
class Reaction:
    journey: Journey
    decisions: list[Decision] = field(default_factory=list)
    conversions: list[Conversion] = field(default_factory=list)
    # Re-assignments of dealer leads whose SLA passed: (original action id, new decision).
    reassignments: list[tuple[str, Decision]] = field(default_factory=list)
    # Figures beyond the decisions' own (read_model.py): (campaign, figure, customer id), e.g. a
    # journey's per-step `step:<name>:reached`.
    figures: list[tuple[str, str, str]] = field(default_factory=list)
    funnel: list[FunnelTouch] = field(default_factory=list)  # counted in campaigns' funnels


def new_journey(customer_id: str) -> Journey:
    return Journey(view=CustomerView(customer_id=customer_id))


def on_input(journey: Journey, chained: ChainInput, context: Context) -> Reaction:
    """One input of the customer with the score and profile it led to.

    The event's own effects come first (consent, dealer, a conversion credited to the touches
    before it, and the delayed triggers it ends), then the customer's view takes the new score
    and profile, and the delayed triggers of campaigns whose audience the customer is now
    outside exit; then the triggers fire in a fixed order — band, layer, model, tags, the event
    itself — each decided on the customer as they are after the input. A band moved by time
    alone comes the same way, as scoring's own input (a tick), and fires `band_left` and
    `band_entered` like any other."""
    reaction = Reaction(journey)
    event = chained.event
    if event is not None:
        _event_effects(reaction, event, context)
    before = reaction.journey.view
    view = before
    if (score := chained.score) is not None:
        view = replace(view, band=score.band, activity=score.activity, model=score.top_model or view.model)
    if (profile := chained.profile) is not None:
        view = replace(
            view,
            layer=profile.layer,
            orientation=profile.orientation,
            stage=profile.stage,
            tags=frozenset(profile.tags),
            milestones=frozenset(profile.milestones) | before.milestones,
        )
    if view != before:
        reaction.journey = replace(reaction.journey, view=view)
    if new_milestones := view.milestones - before.milestones:
        _count_milestones(reaction, new_milestones)
    _exit_waiting(reaction, LEFT_AUDIENCE, lambda c: not in_audience(c.audience, view), context)
    _advance_runs(reaction, lambda run: True, event.type if event is not None else None, context)
    input_id = chained.input_id
    fired: list[tuple[TriggerKind, str, str]] = []
    if view.band != before.band:
        fired.append((TriggerKind.band_left, before.band, f"score-left:{input_id}"))
        fired.append((TriggerKind.band_entered, view.band, f"score:{input_id}"))
    if view.activity != before.activity and before.activity is not None:
        fired.append((TriggerKind.activity_entered, view.activity or "", f"activity:{input_id}"))
    if view.layer != before.layer:
        fired.append((TriggerKind.layer_entered, view.layer, f"profile:{input_id}"))
    if view.model != before.model and view.model is not None:
        fired.append((TriggerKind.model_entered, view.model, f"model:{input_id}"))
    fired += [
        (TriggerKind.tag_added, tag, f"profile:{input_id}:{tag}") for tag in sorted(view.tags - before.tags)
    ]
    if event is not None:
        fired.append((TriggerKind.event, event.type, event.event_id))
    for kind, value, trigger_id in fired:
        _merge(reaction, _fire(reaction.journey, kind, value, trigger_id, context))
    return bounded(reaction, context)


def on_event(journey: Journey, event: CampaignEvent, context: Context) -> Reaction:
    """A touchpoint event on its own (no score or profile came with it)."""
    chained = ChainInput(input_id=event.event_id, customer_id=event.customer_id, event=event)
    return on_input(journey, chained, context)


def _event_effects(reaction: Reaction, event: CampaignEvent, context: Context) -> None:
    journey = reaction.journey
    view = journey.view
    consents = consents_after(view.consents, event.type, event.text("channel"), event.occurred_at)
    journey = replace(
        journey,
        view=replace(view, consents=consents) if consents != view.consents else view,
        dealer_id=event.text("dealer_id") or journey.dealer_id,
        city=event.text("city") or journey.city,
        last_followup_at=event.occurred_at if event.type == "dealer.followup" else journey.last_followup_at,
    )
    reaction.journey = journey
    if event.type in DELIVERY_RESULTS:
        _count_delivery(reaction, event)
    if event.type in CONVERSIONS:
        last = _last_touch(journey, event.received_at, context)
        if last is not None:
            reaction.conversions.append(_conversion(journey, last, event.type, event.occurred_at))
        if (programme := _last_touch(journey, event.received_at, context, programme=True)) is not None:
            reaction.conversions.append(_conversion(journey, programme, event.type, event.occurred_at))
        _exit_waiting(reaction, CONVERTED, lambda c: c.exit_on_conversion, context)


def _count_delivery(reaction: Reaction, event: CampaignEvent) -> None:
    """A delivery adapter's word on an action (services/wecom_sender): counted by action id."""
    campaign_id, action = event.text("campaign_id"), event.text("action_id")
    if campaign_id is not None and action is not None:
        figure = (
            "delivered"
            if event.type == "campaign.delivered"
            else f"failed:{event.text('reason') or 'unknown'}"
        )
        reaction.figures.append((campaign_id, figure, action))


def on_broadcast(journey: Journey, campaign_id: str, trigger_id: str, context: Context) -> Reaction:
    """A broadcast's tick (broadcasts.py): decided on the customer as they are now, like any
    trigger; nothing if the broadcast is gone, paused, or the customer left its audience."""
    campaign = next((c for c in context.campaigns if c.id == campaign_id), None)
    if campaign is None or campaign.status != "active" or not in_audience(campaign.audience, journey.view):
        return Reaction(journey)
    return bounded(_act(journey, [campaign], trigger_id, context), context)


def on_tick(journey: Journey, context: Context) -> Reaction:
    """Release what is due: deferred messages, delayed triggers, SLA checks, journeys' waits
    and branches whose time is up."""
    now = context.now
    due = [s for s in journey.scheduled if s.due <= now]
    reaction = Reaction(replace(journey, scheduled=tuple(s for s in journey.scheduled if s.due > now)))
    _advance_runs(reaction, lambda run: run.until is not None and run.until <= now, None, context)
    by_id = {c.id: c for c in context.campaigns}
    for item in sorted(due, key=lambda s: (s.due, s.campaign_id)):
        campaign = by_id.get(item.campaign_id)
        active = campaign is not None and campaign.status == "active"
        if item.kind == "deliver" and item.decision is not None:
            # Deferred by quiet hours: the customer may have revoked consent, or ops paused or
            # deleted the campaign, since the decision; a message goes out only if both still hold.
            released = replace(item.decision, outcome="sent", reason=None, at=now, deliver_at=None)
            if not active:
                released = replace(released, outcome="suppressed", reason="campaign_inactive")
            elif not has_consent(released.channel, reaction.journey.view):
                released = replace(released, outcome="suppressed", reason="no_consent")
            reaction.decisions.append(released)
        elif item.kind == "trigger" and campaign is not None and active:
            if in_audience(campaign.audience, reaction.journey.view):  # checked again after the delay
                _merge(reaction, _act(reaction.journey, [campaign], item.trigger_id, context))
            else:  # e.g. the audience was changed meanwhile: recorded, so the figures show it
                reaction.decisions.append(
                    _exit(campaign, reaction.journey.view.customer_id, item.trigger_id, LEFT_AUDIENCE, now)
                )
        elif item.kind == "sla" and campaign is not None and active:  # a paused campaign reassigns nobody
            _check_sla(reaction, campaign, item, context)
    return bounded(reaction, context)


def bounded(reaction: Reaction, context: Context) -> Reaction:
    """The reaction with at most MAX_SCHEDULED items waiting in its journey: past that, those due
    last go (triggers, then deferred messages, then SLA checks), each a `schedule_full`
    suppression where it would have decided something."""
    journey = reaction.journey
    if len(journey.scheduled) <= MAX_SCHEDULED:
        return reaction
    ranked = sorted(
        journey.scheduled,
        key=lambda s: (_DROP_FIRST[s.kind], -s.due.timestamp(), s.campaign_id, s.trigger_id),
    )
    dropped = ranked[: len(ranked) - MAX_SCHEDULED]
    gone = {id(item) for item in dropped}
    reaction.journey = replace(journey, scheduled=tuple(s for s in journey.scheduled if id(s) not in gone))
    by_id = {c.id: c for c in context.campaigns}
    customer_id = journey.view.customer_id
    for item in sorted(dropped, key=lambda s: (s.due, s.campaign_id, s.trigger_id)):
        if item.kind == "deliver" and item.decision is not None:
            reaction.decisions.append(
                replace(
                    item.decision, outcome="suppressed", reason=SCHEDULE_FULL, at=context.now, deliver_at=None
                )
            )
        elif item.kind == "trigger" and (campaign := by_id.get(item.campaign_id)) is not None:
            reaction.decisions.append(
                _exit(campaign, customer_id, item.trigger_id, SCHEDULE_FULL, context.now)
            )
    return reaction


def _fire(journey: Journey, kind: TriggerKind, value: str, trigger_id: str, context: Context) -> Reaction:
    fired = [c for c in context.campaigns if fires(c, kind, value) and in_audience(c.audience, journey.view)]
    delayed = [c for c in fired if c.trigger.delay_hours > 0]
    now = [c for c in fired if c.trigger.delay_hours <= 0]
    if delayed:
        later = tuple(
            Scheduled(context.now + timedelta(hours=c.trigger.delay_hours), "trigger", c.id, trigger_id)
            for c in delayed
        )
        journey = replace(journey, scheduled=journey.scheduled + later)
    if not now:
        return Reaction(journey)
    return _act(journey, now, trigger_id, context)


def _exit_waiting(
    reaction: Reaction, reason: str, exits: Callable[[Campaign], bool], context: Context
) -> None:
    """Drop the delayed triggers still waiting for campaigns the customer exits (`exits` says
    which), each recorded as a suppressed decision with `reason`, and end the customer's runs
    through such journeys (`exited:<reason>` at their step). A trigger of a campaign no longer
    defined stays: at due time it is dropped as before (paused ones are judged here like active
    ones: the exit is the customer's, whatever the campaign's status)."""
    by_id = {c.id: c for c in context.campaigns}
    if reaction.journey.runs:
        for run in reaction.journey.runs:
            if (campaign := by_id.get(run.campaign_id)) is not None and exits(campaign):
                _end_run(reaction, run, reason)
    journey = reaction.journey
    if not any(s.kind == "trigger" for s in journey.scheduled):
        return
    kept: list[Scheduled] = []
    for item in journey.scheduled:
        campaign = by_id.get(item.campaign_id) if item.kind == "trigger" else None
        if campaign is not None and exits(campaign):
            customer_id = journey.view.customer_id
            reaction.decisions.append(_exit(campaign, customer_id, item.trigger_id, reason, context.now))
        else:
            kept.append(item)
    if len(kept) < len(journey.scheduled):
        reaction.journey = replace(journey, scheduled=tuple(kept))


def _exit(campaign: Campaign, customer_id: str, trigger_id: str, reason: str, now: datetime) -> Decision:
    """A delayed trigger that left its campaign, under the action id it would have decided."""
    action = campaign.first_action
    return Decision(
        action_id=action_id(campaign.id, customer_id, trigger_id),
        campaign_id=campaign.id,
        customer_id=customer_id,
        kind=action.kind,
        channel=action.channel,
        content_id=None,
        variant=None,
        outcome="suppressed",
        reason=reason,
        at=now,
        points=action.points,
    )


def _act(journey: Journey, fired: list[Campaign], trigger_id: str, context: Context) -> Reaction:
    """Campaigns that fired for the customer: single actions decided together, journeys entered."""
    single = [c for c in fired if not c.steps]
    reaction = _decide(journey, single, trigger_id, context) if single else Reaction(journey)
    for campaign in fired:
        if campaign.steps:
            _enter(reaction, campaign, trigger_id, context)
    return reaction


def _enter(reaction: Reaction, campaign: Campaign, trigger_id: str, context: Context) -> None:
    """The customer enters a journey, unless already in it or entered before and may not again
    (`already_entered`), in its holdout (measured from here, as a holdout decision), or in as
    many journeys as a row keeps (`schedule_full`); each refusal is a suppressed decision under
    the entry's id, named after the journey's first action."""
    journey = reaction.journey
    customer_id = journey.view.customer_id
    run_id = action_id(campaign.id, customer_id, trigger_id)
    pacing, now = journey.pacing, context.now
    reason: str | None = None
    if any(run.campaign_id == campaign.id for run in journey.runs) or (
        campaign.id in pacing.entered and not may_reenter(campaign, pacing.entered_at.get(campaign.id), now)
    ):
        reason = "already_entered"
    elif in_holdout(campaign, customer_id):
        reason = HOLDOUT
    elif len(journey.runs) >= MAX_RUNS:
        reason = SCHEDULE_FULL
    if reason in (None, HOLDOUT):
        entered = Pacing(
            pacing.entered | {campaign.id},
            pacing.sent_on,
            pacing.channel_sent_on,
            {**pacing.entered_at, campaign.id: now},
        )
        journey = replace(journey, pacing=bounded_pacing(entered))
        reaction.journey = journey
    if reason is not None:
        refused = _exit(campaign, customer_id, trigger_id, reason, now)
        if reason == HOLDOUT:
            refused = replace(refused, variant=HOLDOUT)
            _touch(reaction, refused, context)
        reaction.decisions.append(refused)
        return
    # Intent to treat: the customer counts for the journey's group from entering, like a holdout.
    reaction.figures.append((campaign.id, "entered:default", customer_id))
    _add_touch(reaction, Touch(campaign.id, None, context.received_at or now))
    _apply(reaction, campaign, journey_steps.start(campaign, run_id, journey.view, now), context)


def _advance_runs(
    reaction: Reaction, moves: Callable[[Run], bool], event_type: str | None, context: Context
) -> None:
    """Move on the runs `moves` picks (an input: all, a branch may be waiting for it; a tick:
    those whose time is up). A run of a journey no longer defined ends unrecorded; of a paused
    one, exits (`campaign_inactive`) when it would move on."""
    by_id = {c.id: c for c in context.campaigns}
    for run in reaction.journey.runs:
        if not moves(run):
            continue
        campaign = by_id.get(run.campaign_id)
        if campaign is None or not campaign.steps:
            _end_run(reaction, run, None)
            continue
        progress = journey_steps.advance(campaign, run, reaction.journey.view, event_type, context.now)
        if campaign.status != "active" and (progress.acts or progress.run != run):
            _end_run(reaction, run, CAMPAIGN_INACTIVE, campaign)
        elif progress.run != run or progress.marks:
            _apply(reaction, campaign, progress, context, run)


def _apply(
    reaction: Reaction, campaign: Campaign, progress: Progress, context: Context, was: Run | None = None
) -> None:
    """A run's progress: its action steps decided, its figures, the run where it now is."""
    runs = tuple(r for r in reaction.journey.runs if r is not was)
    reaction.journey = replace(reaction.journey, runs=(*runs, progress.run) if progress.run else runs)
    customer_id = reaction.journey.view.customer_id
    reaction.figures += [
        (campaign.id, f"step:{step}:{figure}", customer_id) for step, figure in progress.marks
    ]
    for step, trigger_id in progress.acts:
        # Entry already judged re-entry and holdout for the whole journey.
        acting = campaign.model_copy(update={"action": step.action, "holdout_pct": 0, "reentry": "always"})
        _merge(reaction, _decide(reaction.journey, [acting], trigger_id, context, step.name))


def _end_run(reaction: Reaction, run: Run, reason: str | None, campaign: Campaign | None = None) -> None:
    journey = reaction.journey
    reaction.journey = replace(journey, runs=tuple(r for r in journey.runs if r is not run))
    if reason is not None:
        reaction.figures.append(
            (run.campaign_id, f"step:{run.step}:exited:{reason}", journey.view.customer_id)
        )


def _decide(
    journey: Journey, fired: list[Campaign], trigger_id: str, context: Context, step: str | None = None
) -> Reaction:
    pacing, decisions = decide(
        journey.view,
        journey.pacing,
        fired,
        trigger_id,
        context.now,
        context.quiet,
        context.channel_caps,
        context.global_control_pct,
    )
    if step is not None:
        decisions = [replace(d, step=step) for d in decisions]
    scheduled: list[Scheduled] = []
    reaction = Reaction(replace(journey, pacing=pacing), decisions)
    for decision in decisions:
        if decision.outcome == "deferred" and decision.deliver_at is not None:
            scheduled.append(
                Scheduled(decision.deliver_at, "deliver", decision.campaign_id, trigger_id, decision)
            )
        # Conversions count for the group a customer was put in (intent to treat): a message
        # deferred by quiet hours counts from the decision, like a holdout.
        if decision.outcome in ("sent", "deferred") or decision.reason == HOLDOUT:
            _touch(reaction, decision, context)
        if (group := programme_group(decision.outcome, decision.reason, decision.channel)) is not None:
            _touch_programme(reaction, group, decision, context)
        if decision.outcome == "sent" and decision.kind is ActionKind.assign_dealer:
            sla = timedelta(hours=decision.sla_hours or DEFAULT_SLA_HOURS)
            scheduled.append(
                Scheduled(context.now + sla, "sla", decision.campaign_id, decision.action_id, decision)
            )
    if scheduled:
        reaction.journey = replace(reaction.journey, scheduled=reaction.journey.scheduled + tuple(scheduled))
    return reaction


def _check_sla(reaction: Reaction, campaign: Campaign, item: Scheduled, context: Context) -> None:
    journey = reaction.journey
    sla_hours = _sla_hours(campaign, item)
    assigned_at = item.due - timedelta(hours=sla_hours)
    if not sla_missed(assigned_at, sla_hours, journey.last_followup_at, context.now):
        return
    again = Decision(
        action_id=action_id(campaign.id, journey.view.customer_id, f"sla:{item.trigger_id}"),
        campaign_id=campaign.id,
        customer_id=journey.view.customer_id,
        kind=ActionKind.assign_dealer,
        channel=Channel.dealer,
        content_id=None,
        variant=None,
        outcome="sent",
        reason="sla_missed",
        at=context.now,
        step=item.decision.step if item.decision is not None else None,
        sla_hours=sla_hours,
    )
    reaction.reassignments.append((item.trigger_id, again))
    reaction.decisions.append(again)
    next_check = Scheduled(
        context.now + timedelta(hours=sla_hours), "sla", campaign.id, again.action_id, again
    )
    reaction.journey = replace(journey, scheduled=(*journey.scheduled, next_check))


def _sla_hours(campaign: Campaign, item: Scheduled) -> float:
    """The SLA of a lead's hand-off: its decision's (rows written before decisions kept it: the
    campaign's action's)."""
    if item.decision is not None and item.decision.sla_hours is not None:
        return item.decision.sla_hours
    return campaign.action.sla_hours if campaign.action is not None else DEFAULT_SLA_HOURS


def _touch(reaction: Reaction, decision: Decision, context: Context) -> None:
    _add_touch(reaction, Touch(decision.campaign_id, decision.variant, context.received_at or decision.at))


def _add_touch(reaction: Reaction, touch: Touch) -> None:
    journey = reaction.journey
    reaction.journey = replace(journey, touches=(*journey.touches, touch)[-MAX_TOUCHES:])
    if touch.variant != HOLDOUT and touch.campaign_id not in journey.cohorts:
        _join_cohort(reaction, touch.campaign_id, touch.at.astimezone(CHINA).date().isoformat())


def _join_cohort(reaction: Reaction, campaign_id: str, day: str) -> None:
    """The campaign acted for the customer the first time: they join its funnel cohort of the
    day, counted for having entered and for every milestone and pair they already hold."""
    journey = reaction.journey
    cohorts = {**journey.cohorts, campaign_id: day}
    if len(cohorts) > MAX_ENTERED:  # the latest days kept, like the campaigns entered
        cohorts = dict(sorted(cohorts.items(), key=lambda item: (item[1], item[0]))[-MAX_ENTERED:])
    reaction.journey = replace(journey, cohorts=cohorts)
    held = {"entered", *journey.view.milestones}
    customer_id = journey.view.customer_id
    reaction.funnel += [
        FunnelTouch(day, "campaign", campaign_id, figure, customer_id) for figure in newly_counted(held, held)
    ]


def _count_milestones(reaction: Reaction, new: frozenset[str]) -> None:
    """Milestones the customer just reached, counted in the funnel of every campaign whose
    cohort they are in (for a campaign, `entered` is having entered it)."""
    journey = reaction.journey
    figures = newly_counted(new, {"entered", *journey.view.milestones})
    customer_id = journey.view.customer_id
    reaction.funnel += [
        FunnelTouch(day, "campaign", campaign_id, figure, customer_id)
        for campaign_id, day in sorted(journey.cohorts.items())
        for figure in figures
    ]


def programme_group(outcome: str, reason: str | None, channel: str) -> str | None:
    """The programme-wide group a decision puts the customer in: `treated` when a campaign
    messaged them (or will, after quiet hours), `control` when the global control group kept a
    message from them; None for anything else (dealer hand-offs, points, other suppressions)."""
    if reason == GLOBAL_CONTROL:
        return PROGRAMME_CONTROL
    if outcome in ("sent", "deferred") and Channel(channel).messages_the_customer:
        return PROGRAMME_TREATED
    return None


def _touch_programme(reaction: Reaction, group: str, decision: Decision, context: Context) -> None:
    """One programme touch per customer, the latest: a conversion within the window counts for
    the programme's group once, whatever the campaigns that touched the customer."""
    at = context.received_at or decision.at
    journey = reaction.journey
    touches = tuple(t for t in journey.touches if t.campaign_id != PROGRAMME)
    reaction.journey = replace(journey, touches=(*touches, Touch(PROGRAMME, group, at))[-MAX_TOUCHES:])


def _order(touch: Touch) -> tuple[datetime, str, str]:
    """Which of two touches is the later one; ties (one input firing two campaigns) by campaign."""
    return (touch.at, touch.campaign_id, touch.variant or "")


def _last_touch(
    journey: Journey, received_at: datetime, context: Context, programme: bool = False
) -> Touch | None:
    """The touch a conversion goes to: the last one within the window before it, if any; of
    the campaigns' touches, or (programme=True) the programme's one."""
    since = received_at - context.attribution_window
    candidates = [
        t
        for t in journey.touches
        if since <= t.at <= received_at and (t.campaign_id == PROGRAMME) == programme
    ]
    return max(candidates, key=_order, default=None)


def _conversion(journey: Journey, touch: Touch, event_type: str, at: datetime) -> Conversion:
    return Conversion(touch.campaign_id, journey.view.customer_id, touch.variant or "default", event_type, at)


def _merge(into: Reaction, other: Reaction) -> None:
    into.journey = other.journey
    into.decisions += other.decisions
    into.conversions += other.conversions
    into.reassignments += other.reassignments
    into.figures += other.figures
    into.funnel += other.funnel
