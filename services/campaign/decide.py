"""What happens when campaigns fire for a customer: an action, or a suppression with its reason.

Checks, in order, for each campaign that fired (highest priority first, then by id):
0. `global_control` — the customer is in the programme's global control group
   (GLOBAL_CONTROL_PCT): no campaign sends them a message (dealer hand-offs and points still
   happen: they are service, not marketing); measured against the rest for the programme's lift;
1. `already_entered` — the customer entered this campaign before (was acted on or held out) and
   it does not allow re-entry: `reentry` `never`, or `after_days` while fewer than
   `reentry_after_days` have passed since they last entered (`always` never suppresses for this);
2. `holdout` — the customer is in the campaign's deterministic holdout group (measured, not sent);
3. `no_consent` — the channel messages the customer, who has not consented to it;
4. `frequency_cap` — the campaign already acted for the customer as often as allowed today;
5. `priority` — a campaign of higher priority took the same channel for this trigger;
6. `channel_cap` — the channel already carried as many messages to the customer today, from any
   campaign, as its daily cap allows (CHANNEL_DAILY_CAPS, e.g. one WeCom 1v1 message a day);
   campaigns firing on one trigger are taken highest priority first, so priority decides who
   takes the day's message;
7. `quiet_hours` — a message during quiet hours is deferred to their end, never dropped.
A deferred message is checked again when it is due (journey.on_tick): it is suppressed then as
`campaign_inactive` if its campaign was paused or deleted meanwhile, or `no_consent`.
A delayed trigger (`trigger.delay_hours`) waiting for its time exits the campaign (journey.py),
recorded as suppressed: `converted` — the customer converted meanwhile and the campaign has
`exit_on_conversion`; `left_audience` — an input, or the check at due time, found the customer
outside the campaign's audience.
Action ids are derived from (campaign, customer, trigger), so a replayed trigger decides the
same ids and consumers can drop the repeat.

Bounded (docs/contract.md, "Bounds"): a customer's pacing keeps today's counts only (a count of
another day is 0 anyway), and the MAX_ENTERED campaigns the customer entered last; a campaign
entered before those is forgotten, as if long ago (`reentry` `never` lets such a customer in
again: the price of a row that does not grow with every campaign ever run).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from shared.dataclass_replace import replace

from .definitions import ActionKind, Campaign, Channel
from .targeting import (
    CHINA,
    CustomerView,
    QuietHours,
    content_for,
    has_consent,
    in_global_control,
    in_holdout,
    variant_of,
)

ACTION_IDS = uuid.UUID("6f1c3e0a-5b8e-4d7a-9c41-2f6b8a0d9e17")
HOLDOUT = "holdout"
GLOBAL_CONTROL = "global_control"
# Campaigns a customer's pacing remembers entering: far more than run at once, so only a customer
# in hundreds of campaigns over the years forgets the earliest.
MAX_ENTERED = 200

Outcome = Literal["sent", "deferred", "suppressed"]


@dataclass(frozen=True, slots=True)
class Pacing:
    """A customer's history with campaigns, as far as pacing needs it."""

    entered: frozenset[str] = frozenset()  # campaigns the customer entered
    sent_on: Mapping[str, tuple[str, int]] = field(default_factory=dict)  # campaign -> (China date, count)
    # channel -> (China date, messages from any campaign that day): for the channels' daily caps.
    channel_sent_on: Mapping[str, tuple[str, int]] = field(default_factory=dict)
    # Campaign -> when the customer last entered it, for `reentry` `after_days`: one entry per
    # campaign, like `entered`. Rows written before it have `entered` alone (see `may_reenter`).
    entered_at: Mapping[str, datetime] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Decision:
    action_id: str
    campaign_id: str
    customer_id: str
    kind: ActionKind
    channel: Channel
    content_id: str | None
    variant: str | None  # the A/B variant; "holdout" for the holdout group
    outcome: Outcome
    reason: str | None  # why suppressed or deferred
    at: datetime
    deliver_at: datetime | None = None  # deferred: when the action may go out
    points: int | None = None
    step: str | None = None  # a journey's step that decided it (journey_steps.py)
    sla_hours: float | None = None  # assign_dealer: time to a dealer.followup
    group_template: str | None = None  # invite_group: which group the customer is invited to


def action_id(campaign_id: str, customer_id: str, trigger_id: str) -> str:
    return str(uuid.uuid5(ACTION_IDS, f"{campaign_id}\x00{customer_id}\x00{trigger_id}"))


def decide(
    customer: CustomerView,
    pacing: Pacing,
    fired: Sequence[Campaign],
    trigger_id: str,
    now: datetime,
    quiet: QuietHours,
    channel_caps: Mapping[str, int] | None = None,
    global_control_pct: float = 0.0,
) -> tuple[Pacing, list[Decision]]:
    """Decide every campaign that fired for the customer on one trigger. `channel_caps`: the most
    messages a channel may carry to one customer a day, from all campaigns together."""
    caps = channel_caps or {}
    entered = set(pacing.entered)
    entered_at = dict(pacing.entered_at)
    sent_on = dict(pacing.sent_on)
    channel_sent_on = dict(pacing.channel_sent_on)
    controlled = in_global_control(customer.customer_id, global_control_pct)
    today = now.astimezone(CHINA).date().isoformat()
    taken: set[Channel] = set()
    decisions: list[Decision] = []
    for campaign in sorted(fired, key=lambda c: (-c.priority, c.id)):
        action = campaign.first_action
        variant = variant_of(campaign, customer.customer_id)
        base = Decision(
            action_id=action_id(campaign.id, customer.customer_id, trigger_id),
            campaign_id=campaign.id,
            customer_id=customer.customer_id,
            kind=action.kind,
            channel=action.channel,
            content_id=content_for(campaign, variant, customer.orientation),
            variant=variant,
            outcome="sent",
            reason=None,
            at=now,
            points=action.points,
            sla_hours=action.sla_hours if action.kind is ActionKind.assign_dealer else None,
            group_template=action.group_template if action.kind is ActionKind.invite_group else None,
        )
        count = _sent_today(sent_on, campaign.id, today)
        cap = caps.get(action.channel.value)
        on_channel = _sent_today(channel_sent_on, action.channel.value, today)
        reason: str | None = None
        if controlled and action.channel.messages_the_customer:
            reason = GLOBAL_CONTROL
        elif campaign.id in entered and not may_reenter(campaign, entered_at.get(campaign.id), now):
            reason = "already_entered"
        elif in_holdout(campaign, customer.customer_id):
            reason, base = HOLDOUT, replace(base, variant=HOLDOUT, content_id=None)
        elif not has_consent(action.channel, customer):
            reason = "no_consent"
        elif count >= campaign.frequency_cap.per_customer_per_day:
            reason = "frequency_cap"
        elif action.channel in taken:
            reason = "priority"
        elif cap is not None and on_channel >= cap:
            reason = "channel_cap"
        if reason in (None, HOLDOUT):  # acted on, or measured as holdout: the customer is in
            entered.add(campaign.id)
            entered_at[campaign.id] = now
        if reason is not None:
            decisions.append(replace(base, outcome="suppressed", reason=reason))
            continue
        taken.add(action.channel)
        sent_on[campaign.id] = (today, count + 1)
        if cap is not None:  # a deferred message takes the day's place too: it will go out
            channel_sent_on[action.channel.value] = (today, on_channel + 1)
        if action.channel.messages_the_customer and campaign.respect_quiet_hours and quiet.contains(now):
            decisions.append(
                replace(base, outcome="deferred", reason="quiet_hours", deliver_at=quiet.over_at(now))
            )
        else:
            decisions.append(base)
    return bounded_pacing(Pacing(frozenset(entered), sent_on, channel_sent_on, entered_at), today), decisions


def bounded_pacing(pacing: Pacing, today: str | None = None) -> Pacing:
    """`pacing` within its bounds: with `today`, the counts of other days dropped; at most
    MAX_ENTERED campaigns entered, the latest kept (by when; those without a time, from rows
    older than the times, go first; then by id)."""
    sent_on, channel_sent_on = pacing.sent_on, pacing.channel_sent_on
    if today is not None:
        sent_on = {key: count for key, count in sent_on.items() if count[0] == today}
        channel_sent_on = {key: count for key, count in channel_sent_on.items() if count[0] == today}
    entered, entered_at = pacing.entered, pacing.entered_at
    if len(entered) > MAX_ENTERED:
        latest = sorted(entered, key=lambda c: (entered_at.get(c) is not None, entered_at.get(c), c))
        entered = frozenset(latest[-MAX_ENTERED:])
        entered_at = {c: at for c, at in entered_at.items() if c in entered}
    if (sent_on, channel_sent_on, entered) == (pacing.sent_on, pacing.channel_sent_on, pacing.entered):
        return pacing
    return Pacing(entered, sent_on, channel_sent_on, entered_at)


def may_reenter(campaign: Campaign, entered_at: datetime | None, now: datetime) -> bool:
    """Whether a customer who entered the campaign before may enter it again now."""
    if campaign.reentry == "always":
        return True
    if campaign.reentry == "never":
        return False
    if entered_at is None:
        # In `entered` without a time: a row from before the times were kept, so the customer
        # entered before this change: counted as long ago, they may enter again.
        return True
    days = campaign.reentry_after_days
    assert days is not None  # the definition requires it with `after_days`
    return now - entered_at >= timedelta(days=days)


def _sent_today(sent_on: Mapping[str, tuple[str, int]], key: str, today: str) -> int:
    """How many went out today under `key` (a campaign, or a channel): a count from another
    day is 0."""
    day, count = sent_on.get(key, (today, 0))
    return count if day == today else 0
