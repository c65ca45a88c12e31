"""The numbers behind the built-in tag families and the journey stage (docs/tagging.md).

Defaults follow docs/contract.md where it gives a number and docs/domain.md's stories where it does not.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

Count = Annotated[int, Field(ge=1, le=100_000)]

# Interactions a customer makes, as opposed to things done to or about them.
NOT_ENGAGEMENT = frozenset(
    {
        "consent.granted",
        "consent.revoked",
        "wecom.friend_deleted",
        "campaign.delivered",
        "points.granted",
        "dealer.followup",
        "lead.defeated",
    }
)
# Interactions that take effort or show commitment: the "depth" of engagement.
DEEP_ENGAGEMENT = frozenset(
    {
        "content.favorite",
        "content.share",
        "live.comment",
        "wecom.message_in",
        "config.build",
        "quote.requested",
        "test_drive.booked",
        "test_drive.completed",
        "store.visit",
        "community.post",
        "referral.made",
        "survey.answered",
    }
)
# Event type -> how much a content interaction's value_point counts towards orientation.
VALUE_POINT_WEIGHTS: dict[str, float] = {
    "content.view": 1.0,
    "content.click": 1.0,
    "content.favorite": 2.0,
    "content.share": 3.0,
}
PURCHASE_TYPES = frozenset({"mall.purchase", "service.maintenance"})


class TaggingThresholds(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    intent_pct: float = Field(default=60.0, description="intent_pct that makes a prospect an intent lead")
    orientation_min_interactions: Count = 3
    interest_min_interactions: Count = 3
    price_sensitive_min: Count = 2  # price-related interactions + coupon claims
    ripple_min_shares: Count = 2  # or any referral
    deep_live_watch_s: float = 600.0  # a live watch this long counts as deep engagement
    # Stage: active_fan at either threshold; die_hard_fan needs both of its own.
    active_fan_interactions: Count = 10
    active_fan_deep: Count = 3
    die_hard_fan_interactions: Count = 40
    die_hard_fan_deep: Count = 12
    # RFM for owners with purchases; recency is measured at the customer's latest event.
    rfm_recent_days: float = 90.0
    rfm_frequent_purchases: Count = 3
    rfm_high_amount: float = 5000.0  # CNY, summed
