"""Who gets what: audience matching, holdout, A/B variants, content by orientation, consent,
quiet hours. Pure functions of their arguments, deterministic per customer.

Holdout and variant buckets come from a hash of (campaign, customer): the same customer always
lands in the same group of a campaign, on every worker and after every restart, and groups of
different campaigns are independent of each other.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, timezone

from .consent import StoredConsent
from .definitions import Audience, Campaign, Channel, Content, TriggerKind

CHINA = timezone(timedelta(hours=8))  # Asia/Shanghai: no daylight saving time


@dataclass(frozen=True, slots=True)
class CustomerView:
    """What the campaign worker knows of a customer when a trigger fires."""

    customer_id: str
    layer: str = "prospect"
    orientation: str = "unknown"
    stage: str = "newcomer"
    band: str = "low"
    activity: str | None = None  # active_7d / active_30d / dormant, once scoring said
    tags: frozenset[str] = frozenset()
    model: str | None = None  # the car model they are most interested in, once scoring knows one
    milestones: frozenset[str] = frozenset()  # the funnel's, as tagging saw them (shared/funnels.py)
    # channel -> the customer's latest word on it (granted or revoked, and when they said it)
    consents: Mapping[str, StoredConsent] = field(default_factory=dict)


@dataclass(frozen=True)
class QuietHours:
    """When messaging channels stay silent, in China time; spans midnight when start > end."""

    start: time = time(21, 0)
    end: time = time(9, 0)

    def contains(self, at: datetime) -> bool:
        local = at.astimezone(CHINA).time()
        if self.start <= self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def over_at(self, at: datetime) -> datetime:
        """The first moment at or after `at` outside quiet hours."""
        if not self.contains(at):
            return at
        local = at.astimezone(CHINA)
        end = local.replace(hour=self.end.hour, minute=self.end.minute, second=0, microsecond=0)
        if end <= local:
            end += timedelta(days=1)
        return end


def fires(campaign: Campaign, kind: TriggerKind, value: str) -> bool:
    return campaign.status == "active" and campaign.trigger.on is kind and campaign.trigger.value == value


def in_audience(audience: Audience, customer: CustomerView) -> bool:
    return (
        (not audience.layers or customer.layer in audience.layers)
        and (not audience.orientations or customer.orientation in audience.orientations)
        and (not audience.stages or customer.stage in audience.stages)
        and (not audience.bands or customer.band in audience.bands)
        and (not audience.activities or customer.activity in audience.activities)
        and (not audience.models or customer.model in audience.models)
        and all(tag in customer.tags for tag in audience.tags_all)
        and not any(tag in customer.tags for tag in audience.tags_none)
    )


def bucket(campaign_id: str, customer_id: str, purpose: str) -> float:
    """A number in [0, 100), uniform and fixed for the (campaign, customer, purpose)."""
    digest = hashlib.sha256(f"{purpose}\x00{campaign_id}\x00{customer_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * 100


def in_holdout(campaign: Campaign, customer_id: str) -> bool:
    return bucket(campaign.id, customer_id, "holdout") < campaign.holdout_pct


def in_global_control(customer_id: str, control_pct: float) -> bool:
    """The programme's global control group: a share of all customers that no campaign markets
    to, whatever the campaign (same customer, same answer), so the programme's lift as a whole
    can be measured against it."""
    return control_pct > 0 and bucket("*", customer_id, "global-control") < control_pct


def variant_of(campaign: Campaign, customer_id: str) -> str | None:
    """The customer's A/B variant by weight; None for a campaign without variants."""
    variants = campaign.first_action.variants
    if not variants:
        return None
    point = bucket(campaign.id, customer_id, "variant") / 100 * sum(v.weight for v in variants)
    for variant in variants:
        point -= variant.weight
        if point < 0:
            return variant.name
    return variants[-1].name


def content_for(campaign: Campaign, variant: str | None, orientation: str) -> str | None:
    """The content id for the customer's orientation (else `default`); None for content-less kinds."""
    content: Content | None = campaign.first_action.content
    if variant is not None:
        content = next(v.content for v in campaign.first_action.variants if v.name == variant)
    if content is None:
        return None
    chosen = {"rational": content.rational, "emotional": content.emotional}.get(orientation)
    return chosen or content.default


def has_consent(channel: Channel, customer: CustomerView) -> bool:
    """Messages need the customer's consent for the channel (a WeCom friendship for WeCom)."""
    if not channel.messages_the_customer:
        return True
    word = customer.consents.get(channel.value)
    return word is not None and word.granted
