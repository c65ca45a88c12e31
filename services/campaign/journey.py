"""A customer's journey through the campaigns: what each input does, and what comes due later.

Pure: no Kafka, Faust, Redis or HTTP. Inputs are score changes (band_entered), profile changes
(layer_entered, tag_added, and the customer's layer, orientation, stage and tags), the
customer's own touchpoint events (event triggers, consent, dealer and city, conversions,
dealer follow-ups) and ticks of the clock, which release what was scheduled: messages deferred
by quiet hours, triggers delayed by a cooldown, and SLA checks of leads handed to dealers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Literal

from shared.profiles import ProfileTagsChanged
from shared.scores import IntentScoreChanged

from .consent import consents_after
from .decide import HOLDOUT, Decision, Pacing, action_id, decide
from .definitions import ActionKind, Campaign, TriggerKind
from .inputs import CampaignEvent
from .targeting import CustomerView, QuietHours, fires, in_audience

CONVERSIONS = frozenset({"store.visit", "order.placed"})
MAX_TOUCHES = 20


@dataclass(frozen=True, slots=True)
class Scheduled:
    due: datetime
    kind: Literal["deliver", "trigger", "sla", "consent"]
    campaign_id: str
    trigger_id: str  # the input that fired the campaign (or the action id, for an SLA check)
    decision: Decision | None = None  # deliver: the deferred action


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
    # The customer no longer counts as converted for this campaign and group: the only
    # conversion credited there moved to a later touch that was read after it.
    withdrawn: bool = False


@dataclass(frozen=True, slots=True)
class Credit:
    """A conversion and the touch it is credited to, kept so that a touch read later but dated
    between the two can take the credit over (the last touch before a conversion wins, whatever
    order the topics were read in)."""

    event_type: str
    received_at: datetime
    touch: Touch


@dataclass(frozen=True, slots=True)
class Journey:
    view: CustomerView
    pacing: Pacing = field(default_factory=Pacing)
    dealer_id: str | None = None
    city: str | None = None
    scheduled: tuple[Scheduled, ...] = ()
    touches: tuple[Touch, ...] = ()
    last_followup_at: datetime | None = None
    # Conversions no touch was there for yet: a score or profile change travels on another topic
    # and can reach the worker after the store visit it preceded; its touch takes them then.
    unattributed: tuple[tuple[str, datetime], ...] = ()  # (event type, received_at)
    credited: tuple[Credit, ...] = ()  # the latest conversions and their touches

    @property
    def next_due(self) -> datetime | None:
        return min((s.due for s in self.scheduled), default=None)


@dataclass(frozen=True)
class Context:
    """What every reaction needs besides the journey and the input."""

    campaigns: Sequence[Campaign]
    now: datetime
    quiet: QuietHours = field(default_factory=QuietHours)
    attribution_window: timedelta = timedelta(days=7)
    # A trigger derived from the customer's events (a score, a profile change) reaches the worker
    # on another topic than those events and may overtake the consent among them: a `no_consent`
    # is decided only after this grace, in which the consent can still arrive.
    consent_grace: timedelta = timedelta(seconds=60)
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


def new_journey(customer_id: str) -> Journey:
    return Journey(view=CustomerView(customer_id=customer_id))


def on_score(journey: Journey, score: IntentScoreChanged, context: Context) -> Reaction:
    journey = replace(journey, view=replace(journey.view, band=score.band))
    if score.band == score.previous_band:
        return Reaction(journey)
    return _fire(journey, TriggerKind.band_entered, score.band, f"score:{score.event_id}", context)


def on_profile(journey: Journey, change: ProfileTagsChanged, context: Context) -> Reaction:
    view = replace(
        journey.view,
        layer=change.layer,
        orientation=change.orientation,
        stage=change.stage,
        tags=frozenset(change.tags),
    )
    reaction = Reaction(replace(journey, view=view))
    trigger_id = f"profile:{change.event_id}"
    if change.layer != change.previous_layer:
        _merge(
            reaction, _fire(reaction.journey, TriggerKind.layer_entered, change.layer, trigger_id, context)
        )
    for tag in change.tags_added:
        _merge(reaction, _fire(reaction.journey, TriggerKind.tag_added, tag, f"{trigger_id}:{tag}", context))
    return reaction


def on_event(journey: Journey, event: CampaignEvent, context: Context) -> Reaction:
    view = journey.view
    consents = consents_after(view.consents, event.type, event.text("channel"))
    journey = replace(
        journey,
        view=replace(view, consents=consents) if consents != view.consents else view,
        dealer_id=event.text("dealer_id") or journey.dealer_id,
        city=event.text("city") or journey.city,
        last_followup_at=event.occurred_at if event.type == "dealer.followup" else journey.last_followup_at,
    )
    reaction = Reaction(journey)
    if event.type in CONVERSIONS:
        last = _last_touch(journey, event.received_at, context)
        if last is None:
            waiting = (*journey.unattributed, (event.type, event.received_at))[-MAX_TOUCHES:]
            reaction.journey = replace(journey, unattributed=waiting)
        else:
            reaction.conversions.append(_conversion(journey, last, event.type, event.occurred_at))
            credit = Credit(event.type, event.received_at, last)
            reaction.journey = replace(journey, credited=(*journey.credited, credit)[-MAX_TOUCHES:])
    _merge(reaction, _fire(reaction.journey, TriggerKind.event, event.type, event.event_id, context))
    return reaction


def on_tick(journey: Journey, context: Context) -> Reaction:
    """Release what is due: deferred messages, delayed triggers, SLA checks."""
    now = context.now
    due = [s for s in journey.scheduled if s.due <= now]
    if not due:
        return Reaction(journey)
    reaction = Reaction(replace(journey, scheduled=tuple(s for s in journey.scheduled if s.due > now)))
    by_id = {c.id: c for c in context.campaigns}
    for item in sorted(due, key=lambda s: (s.due, s.campaign_id)):
        campaign = by_id.get(item.campaign_id)
        if item.kind == "deliver" and item.decision is not None:
            # Deferred by quiet hours: goes out now, even if the campaign was paused since.
            sent = replace(item.decision, outcome="sent", reason=None, at=now, deliver_at=None)
            reaction.decisions.append(sent)
        elif item.kind == "trigger" and campaign is not None and campaign.status == "active":
            if in_audience(campaign.audience, reaction.journey.view):  # checked again after the delay
                _merge(reaction, _decide(reaction.journey, [campaign], item.trigger_id, context))
        elif item.kind == "sla" and campaign is not None:
            _check_sla(reaction, campaign, item, context)
        elif item.kind == "consent" and campaign is not None and campaign.status == "active":
            final = replace(context, consent_grace=timedelta(0))  # no second grace
            _merge(reaction, _decide(reaction.journey, [campaign], item.trigger_id, final))
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
    return _decide(journey, now, trigger_id, context)


def _decide(journey: Journey, fired: list[Campaign], trigger_id: str, context: Context) -> Reaction:
    pacing, decisions = decide(journey.view, journey.pacing, fired, trigger_id, context.now, context.quiet)
    scheduled: list[Scheduled] = []
    if context.consent_grace > timedelta(0):
        waiting = [d for d in decisions if d.reason == "no_consent"]
        scheduled += [
            Scheduled(context.now + context.consent_grace, "consent", d.campaign_id, trigger_id)
            for d in waiting
        ]
        decisions = [d for d in decisions if d.reason != "no_consent"]
    reaction = Reaction(replace(journey, pacing=pacing), decisions)
    by_id = {c.id: c for c in fired}
    for decision in decisions:
        if decision.outcome == "deferred" and decision.deliver_at is not None:
            scheduled.append(
                Scheduled(decision.deliver_at, "deliver", decision.campaign_id, trigger_id, decision)
            )
        # Conversions count for the group a customer was put in (intent to treat): a message
        # deferred by quiet hours counts from the decision, like a holdout.
        if decision.outcome in ("sent", "deferred") or decision.reason == HOLDOUT:
            _touch(reaction, decision, context)
        if decision.outcome == "sent" and decision.kind is ActionKind.assign_dealer:
            sla = timedelta(hours=by_id[decision.campaign_id].action.sla_hours)
            scheduled.append(Scheduled(context.now + sla, "sla", decision.campaign_id, decision.action_id))
    if scheduled:
        reaction.journey = replace(reaction.journey, scheduled=reaction.journey.scheduled + tuple(scheduled))
    return reaction


def _check_sla(reaction: Reaction, campaign: Campaign, item: Scheduled, context: Context) -> None:
    journey = reaction.journey
    assigned_at = item.due - timedelta(hours=campaign.action.sla_hours)
    followed = journey.last_followup_at
    if followed is not None and followed >= assigned_at:
        return
    again = Decision(
        action_id=action_id(campaign.id, journey.view.customer_id, f"sla:{item.trigger_id}"),
        campaign_id=campaign.id,
        customer_id=journey.view.customer_id,
        kind=ActionKind.assign_dealer,
        channel=campaign.action.channel,
        content_id=None,
        variant=None,
        outcome="sent",
        reason="sla_missed",
        at=context.now,
    )
    reaction.reassignments.append((item.trigger_id, again))
    reaction.decisions.append(again)
    next_check = Scheduled(
        context.now + timedelta(hours=campaign.action.sla_hours), "sla", campaign.id, again.action_id
    )
    reaction.journey = replace(journey, scheduled=(*journey.scheduled, next_check))


def _touch(reaction: Reaction, decision: Decision, context: Context) -> None:
    at = context.received_at or decision.at
    journey = reaction.journey
    touch = Touch(decision.campaign_id, decision.variant, at)
    window_end = at + context.attribution_window
    late = [(kind, when) for kind, when in journey.unattributed if at <= when <= window_end]
    credited = [*journey.credited, *(Credit(kind, when, touch) for kind, when in late)]
    conversions = [_conversion(journey, touch, kind, when) for kind, when in late]
    moved: dict[tuple[str, str | None], Credit] = {}  # by the (campaign, variant) it left
    for n, credit in enumerate(credited):
        # A conversion credited to an earlier touch, and this touch between the two: it is the
        # last touch before the conversion, read after it (it came on another topic).
        if at <= credit.received_at <= window_end and _order(touch) > _order(credit.touch):
            moved[(credit.touch.campaign_id, credit.touch.variant)] = credit
            credited[n] = replace(credit, touch=touch)
            conversions.append(_conversion(journey, touch, credit.event_type, credit.received_at))
    still = {(c.touch.campaign_id, c.touch.variant) for c in credited}
    for left, old in moved.items():
        if left not in still:  # no other conversion keeps the customer converted there
            withdrawn = _conversion(journey, old.touch, old.event_type, old.received_at)
            conversions.append(replace(withdrawn, withdrawn=True))
    reaction.conversions += conversions
    reaction.journey = replace(
        journey,
        touches=(*journey.touches, touch)[-MAX_TOUCHES:],
        unattributed=tuple(c for c in journey.unattributed if c not in late),
        credited=tuple(credited)[-MAX_TOUCHES:],
    )


def _order(touch: Touch) -> tuple[datetime, str, str]:
    """Which of two touches is the later one; ties (one input firing two campaigns) by campaign."""
    return (touch.at, touch.campaign_id, touch.variant or "")


def _last_touch(journey: Journey, received_at: datetime, context: Context) -> Touch | None:
    """The touch a conversion goes to: the last one within the window before it, if any."""
    since = received_at - context.attribution_window
    candidates = [t for t in journey.touches if since <= t.at <= received_at]
    return max(candidates, key=_order, default=None)


def _conversion(journey: Journey, touch: Touch, event_type: str, at: datetime) -> Conversion:
    return Conversion(touch.campaign_id, journey.view.customer_id, touch.variant or "default", event_type, at)


def _merge(into: Reaction, other: Reaction) -> None:
    into.journey = other.journey
    into.decisions += other.decisions
    into.conversions += other.conversions
    into.reassignments += other.reassignments
