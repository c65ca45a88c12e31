"""A campaign's figures, and the programme's, as the API shows them: conversion per group and
each group's lift over its baseline (the holdout; for the programme, the global control group).
Pure: the API reads the figures from Redis (read_model.campaign_figures) and hands them here."""

from __future__ import annotations

from pydantic import BaseModel, Field

from .decide import HOLDOUT
from .lift import lift_of


class GroupStats(BaseModel):
    entered: int = Field(description="customers in the group (sent or deferred, or held out)")
    converted: int = Field(description="of them, customers with an attributed store visit or order")
    conversion_rate: float | None
    lift: float | None = Field(
        description="conversion rate minus the holdout group's, as a fraction; null for the holdout "
        "group itself, without a holdout group, or when either group has no customers"
    )
    lift_ci95: tuple[float, float] | None = Field(
        description="95% confidence interval [low, high] of `lift`: Newcombe's hybrid score interval "
        "(Wilson score interval per group; Newcombe 1998, method 10); null when `lift` is"
    )


class CampaignStats(BaseModel):
    campaign_id: str
    triggered: int = Field(
        description="decisions: every time the campaign fired for a customer in its audience"
    )
    sent: dict[str, int] = Field(description="actions sent per variant (`default` without variants)")
    deferred: int = Field(description="held for quiet hours (sent later, counted in `sent` then)")
    suppressed: dict[str, int] = Field(description="per reason")
    groups: dict[str, GroupStats] = Field(description="per variant and the holdout: compare rates for lift")


def by_prefix(figures: dict[str, int], prefix: str) -> dict[str, int]:
    return {name.removeprefix(prefix): n for name, n in figures.items() if name.startswith(prefix)}


def groups_of(figures: dict[str, int], baseline: str) -> dict[str, GroupStats]:
    """Each group's conversion, and its lift over the `baseline` group with the interval."""
    entered, converted = by_prefix(figures, "entered:"), by_prefix(figures, "converted:")

    def converted_in(group: str) -> int:
        # A survivor's conversion is counted under the survivor's id, which the group's entered
        # set may hold under the merged customer's: never more converted than entered.
        return min(converted.get(group, 0), entered.get(group, 0))

    def group_stats(group: str, n: int) -> GroupStats:
        found = None
        if group != baseline:
            found = lift_of(converted_in(group), n, converted_in(baseline), entered.get(baseline, 0))
        return GroupStats(
            entered=n,
            converted=converted_in(group),
            conversion_rate=converted_in(group) / n if n else None,
            lift=found.lift if found else None,
            lift_ci95=(found.low, found.high) if found else None,
        )

    return {group: group_stats(group, n) for group, n in sorted(entered.items())}


def stats_of(campaign_id: str, figures: dict[str, int]) -> CampaignStats:
    return CampaignStats(
        campaign_id=campaign_id,
        triggered=figures.get("triggered", 0),
        sent=by_prefix(figures, "sent:"),
        deferred=figures.get("deferred", 0),
        suppressed=by_prefix(figures, "suppressed:"),
        groups=groups_of(figures, HOLDOUT),
    )


class ProgrammeStats(BaseModel):
    global_control_pct: float = Field(description="the share of all customers no campaign markets to")
    groups: dict[str, GroupStats] = Field(
        description="`treated`: customers a campaign messaged; `control`: customers of the global "
        "control group a campaign would have messaged; `lift` of treated over control"
    )
