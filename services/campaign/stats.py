"""A campaign's figures, and the programme's, as the API shows them: conversion per group and
each group's lift over its baseline (the holdout; for the programme, the global control group).
Pure: the API reads the figures from Redis (read_model.campaign_figures) and hands them here."""

from __future__ import annotations

from collections.abc import Sequence

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


class StepStats(BaseModel):
    step: str
    reached: int = Field(description="customers who reached the step")
    sent: int = Field(description="an action step's actions sent (or deferred, then sent)")
    deferred: int = Field(description="an action step's actions held for quiet hours")
    suppressed: dict[str, int] = Field(description="an action step's suppressions, per reason")
    then: int = Field(description="a branch: customers for whom its condition was met in time")
    otherwise: int = Field(description="a branch: customers whose time ran out")
    exited: dict[str, int] = Field(
        description="customers whose journey ended here, per why: `completed` (an exit step, or "
        "after the last step), `converted`, `left_audience`, `campaign_inactive`, `step_removed`"
    )


class CampaignStats(BaseModel):
    campaign_id: str
    triggered: int = Field(
        description="decisions: every time the campaign fired for a customer in its audience"
    )
    sent: dict[str, int] = Field(description="actions sent per variant (`default` without variants)")
    deferred: int = Field(description="held for quiet hours (sent later, counted in `sent` then)")
    suppressed: dict[str, int] = Field(description="per reason")
    delivered: int = Field(
        default=0, description="actions a delivery adapter (the WeCom sender) says were delivered"
    )
    failed: dict[str, int] = Field(
        default_factory=dict, description="actions a delivery adapter could not deliver, per why"
    )
    groups: dict[str, GroupStats] = Field(description="per variant and the holdout: compare rates for lift")
    steps: list[StepStats] = Field(
        default_factory=list, description="a journey's figures per step, in the steps' order"
    )


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


def steps_of(figures: dict[str, int], defined: Sequence[str]) -> list[StepStats]:
    """Per-step figures: the defined steps in order, then steps with figures no longer defined."""
    found = {name.split(":", 2)[1] for name in figures if name.startswith("step:")}
    names = [*defined, *sorted(found - set(defined))]

    def step_stats(step: str) -> StepStats:
        mine = by_prefix(figures, f"step:{step}:")
        return StepStats(
            step=step,
            reached=mine.get("reached", 0),
            sent=mine.get("sent", 0),
            deferred=mine.get("deferred", 0),
            suppressed=by_prefix(mine, "suppressed:"),
            then=mine.get("then", 0),
            otherwise=mine.get("otherwise", 0),
            exited=by_prefix(mine, "exited:"),
        )

    return [step_stats(step) for step in names]


def stats_of(campaign_id: str, figures: dict[str, int], steps: Sequence[str] = ()) -> CampaignStats:
    """`steps`: the campaign's step names, if it is a journey."""
    return CampaignStats(
        campaign_id=campaign_id,
        triggered=figures.get("triggered", 0),
        sent=by_prefix(figures, "sent:"),
        deferred=figures.get("deferred", 0),
        suppressed=by_prefix(figures, "suppressed:"),
        delivered=figures.get("delivered", 0),
        failed=by_prefix(figures, "failed:"),
        groups=groups_of(figures, HOLDOUT),
        steps=steps_of(figures, steps),
    )


class ProgrammeStats(BaseModel):
    global_control_pct: float = Field(description="the share of all customers no campaign markets to")
    groups: dict[str, GroupStats] = Field(
        description="`treated`: customers a campaign messaged; `control`: customers of the global "
        "control group a campaign would have messaged; `lift` of treated over control"
    )
