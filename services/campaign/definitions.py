"""What a campaign is: trigger, audience, action (or steps), holdout, pacing. Validated, as data.

Ops create campaigns through the API; an invalid definition is refused with a reason per field
(422) and never reaches a worker. docs/contract.md's minimal definition is valid as it stands.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from shared.events import CUSTOM_TYPE, EVENT_TYPES

ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
Percent = Annotated[float, Field(ge=0, le=100)]


class TriggerKind(StrEnum):
    band_entered = "band_entered"
    band_left = "band_left"  # e.g. a lead cooling down: left `hot` (by decay, or anything else)
    activity_entered = "activity_entered"  # active_7d -> active_30d -> dormant: waking the dormant
    tag_added = "tag_added"
    layer_entered = "layer_entered"
    model_entered = "model_entered"  # the car model the customer is most interested in became `value`
    scheduled = "scheduled"  # a broadcast: `value` is when (ISO 8601 with its offset); broadcasts.py
    event = "event"


class ActionKind(StrEnum):
    send_content = "send_content"
    invite_group = "invite_group"  # a 1vN WeCom group with a dealer consultant
    assign_dealer = "assign_dealer"  # hand the lead to a dealer consultant
    grant_points = "grant_points"


class Channel(StrEnum):
    # The messaging channels are shared.channels.MESSAGING_CHANNELS, which ingest checks consent
    # events against; add a messaging channel there too (test_campaign_domain checks they agree).
    wecom_1v1 = "wecom_1v1"
    wecom_group = "wecom_group"
    official_account = "official_account"
    mini_program = "mini_program"
    app_push = "app_push"
    sms = "sms"
    dealer = "dealer"  # a consultant's task list: not a message to the customer
    membership = "membership"  # points on the customer's account: not a message either

    @property
    def messages_the_customer(self) -> bool:
        """Messages are subject to consent and quiet hours; dealer tasks and points are not."""
        return self not in (Channel.dealer, Channel.membership)

    @property
    def consent_by_wecom_friendship(self) -> bool:
        return self in (Channel.wecom_1v1, Channel.wecom_group)


BANDS = ("low", "medium", "high", "hot")
LAYERS = ("prospect", "intent", "defeated", "owner")
ORIENTATIONS = ("rational", "emotional", "unknown")
STAGES = ("newcomer", "active_fan", "die_hard_fan")
ACTIVITIES = ("active_7d", "active_30d", "dormant")


class Trigger(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    on: TriggerKind
    value: str = Field(min_length=1, max_length=128)
    # Wait this long after the trigger before acting (e.g. recall defeated leads after a cooldown);
    # the audience is checked again then.
    delay_hours: float = Field(default=0, ge=0, le=24 * 365)
    # A broadcast (`scheduled`) sent again every this many days from `value`; None: once.
    every_days: float | None = Field(default=None, ge=1, le=366)

    @model_validator(mode="after")
    def _value_fits(self) -> Trigger:
        allowed = {
            TriggerKind.band_entered: BANDS,
            TriggerKind.band_left: BANDS,
            TriggerKind.layer_entered: LAYERS,
            TriggerKind.activity_entered: ACTIVITIES,
        }.get(self.on)
        if allowed is not None and self.value not in allowed:
            raise ValueError(f"{self.on} takes one of {', '.join(allowed)}, not {self.value!r}")
        if (
            self.on is TriggerKind.event
            and self.value not in EVENT_TYPES
            and not CUSTOM_TYPE.match(self.value)
        ):
            raise ValueError(f"unknown event type {self.value!r}")
        if self.on is TriggerKind.scheduled:
            try:
                first = datetime.fromisoformat(self.value)
            except ValueError:
                raise ValueError(f"scheduled takes a time (ISO 8601), not {self.value!r}") from None
            if first.tzinfo is None:
                raise ValueError("a scheduled time needs its offset, e.g. 2026-12-05T10:00:00+08:00")
            if self.delay_hours:
                raise ValueError("a scheduled trigger has no delay: schedule it later")
        elif self.every_days is not None:
            raise ValueError("every_days is for scheduled triggers (broadcasts)")
        return self


class Audience(BaseModel):
    """Who a campaign is for: every list given must match (empty lists match everyone)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    layers: list[Literal["prospect", "intent", "defeated", "owner"]] = Field(default_factory=list)
    orientations: list[Literal["rational", "emotional", "unknown"]] = Field(default_factory=list)
    stages: list[Literal["newcomer", "active_fan", "die_hard_fan"]] = Field(default_factory=list)
    bands: list[Literal["low", "medium", "high", "hot"]] = Field(default_factory=list)
    activities: list[Literal["active_7d", "active_30d", "dormant"]] = Field(default_factory=list)
    # Car models: the one the customer is most interested in is among them (scoring's model interest).
    models: list[Annotated[str, Field(min_length=1, max_length=128)]] = Field(
        default_factory=list, max_length=50
    )
    tags_all: list[str] = Field(default_factory=list)
    tags_none: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> Audience:
        if both := set(self.tags_all) & set(self.tags_none):
            raise ValueError(f"tags both required and excluded: {', '.join(sorted(both))}")
        return self


class Content(BaseModel):
    """Content ids by orientation; `default` for customers of another or unknown orientation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rational: str | None = None
    emotional: str | None = None
    default: str = Field(min_length=1, max_length=128)


class Variant(BaseModel):
    """An A/B variant: its share of the (non-holdout) audience and its own content."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")
    weight: float = Field(gt=0, le=100)
    content: Content


class Action(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: ActionKind
    channel: Channel
    content: Content | None = None
    variants: list[Variant] = Field(default_factory=list, max_length=10)
    group_template: str | None = Field(default=None, max_length=128)  # invite_group: the group's template
    points: int | None = Field(default=None, gt=0, le=1_000_000)  # grant_points
    sla_hours: float = Field(default=24, gt=0, le=24 * 30)  # assign_dealer: time to a dealer.followup

    @model_validator(mode="after")
    def _complete(self) -> Action:
        kind = self.kind
        if kind in (ActionKind.send_content, ActionKind.invite_group):
            if self.content is None and not self.variants:
                raise ValueError(f"{kind} needs content (or variants with content)")
            if self.content is not None and self.variants:
                raise ValueError("give content or variants, not both")
        if kind is ActionKind.grant_points:
            if self.points is None:
                raise ValueError("grant_points needs points")
            if self.channel is not Channel.membership:
                raise ValueError("grant_points goes through the membership channel")
        if kind is ActionKind.assign_dealer and self.channel is not Channel.dealer:
            raise ValueError("assign_dealer goes through the dealer channel")
        if (
            kind in (ActionKind.send_content, ActionKind.invite_group)
            and not self.channel.messages_the_customer
        ):
            raise ValueError(f"{kind} needs a messaging channel, not {self.channel}")
        if len({v.name for v in self.variants}) != len(self.variants):
            raise ValueError("variant names must be unique")
        return self


StepName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")]
MAX_STEPS = 20


class Condition(BaseModel):
    """What a branch waits for, exactly one of: an event of this type arriving while it waits,
    a tag the customer has, the band the customer is in."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event: str | None = None
    tag: str | None = Field(default=None, min_length=1, max_length=128)
    band: Literal["low", "medium", "high", "hot"] | None = None

    @model_validator(mode="after")
    def _one(self) -> Condition:
        given = [name for name in ("event", "tag", "band") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("a branch waits for exactly one of event, tag or band")
        if self.event is not None and self.event not in EVENT_TYPES and not CUSTOM_TYPE.match(self.event):
            raise ValueError(f"unknown event type {self.event!r}")
        return self


class WaitStep(BaseModel):
    """Wait this long, then go on (to `next`, else the following step)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["wait"]
    name: StepName
    hours: float = Field(gt=0, le=24 * 365)
    next: StepName | None = None


class ActionStep(BaseModel):
    """Act (send content, invite to a group, assign a dealer, grant points), then go on at once."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["action"]
    name: StepName
    action: Action
    next: StepName | None = None

    @model_validator(mode="after")
    def _no_variants(self) -> ActionStep:
        if self.action.variants:
            # A journey's groups are its customers and its holdout, assigned when they enter.
            raise ValueError("a journey's steps take content, not variants: compare with the holdout")
        return self


class BranchStep(BaseModel):
    """Wait up to `within_hours` for `when`: met, go to `then`; not met in time, to `otherwise`
    (each defaults to the following step). A tag or band the customer already has when the
    branch is reached meets it at once; an event must arrive while the branch waits."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["branch"]
    name: StepName
    when: Condition
    within_hours: float = Field(ge=0, le=24 * 365)
    then: StepName | None = None
    otherwise: StepName | None = None


class ExitStep(BaseModel):
    """The customer leaves the journey here (as after its last step)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["exit"]
    name: StepName


Step = Annotated[WaitStep | ActionStep | BranchStep | ExitStep, Field(discriminator="kind")]


def targets_of(step: Step) -> list[str]:
    """The steps this step names as where to go."""
    if isinstance(step, BranchStep):
        return [t for t in (step.then, step.otherwise) if t is not None]
    if isinstance(step, WaitStep | ActionStep):
        return [step.next] if step.next is not None else []
    return []


class FrequencyCap(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    per_customer_per_day: int = Field(default=1, ge=1, le=100)


class Campaign(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    name: str = Field(min_length=1, max_length=200)
    status: Literal["active", "paused"] = "active"
    trigger: Trigger
    audience: Audience = Audience()
    # One action, or a journey of steps (journey_steps.py): exactly one of the two.
    action: Action | None = None
    steps: list[Step] = Field(default_factory=list, max_length=MAX_STEPS)
    holdout_pct: Percent = 0
    frequency_cap: FrequencyCap = FrequencyCap()
    # May a customer who entered the campaign (was acted on or held out) enter it again:
    # `never`, `always`, or `after_days` (once `reentry_after_days` have passed since they last entered).
    reentry: Literal["never", "always", "after_days"] = "never"
    reentry_after_days: float | None = Field(default=None, gt=0, le=3650, validate_default=True)
    # Drop a delayed trigger still waiting when the customer converts (a store visit, an order).
    exit_on_conversion: bool = True
    priority: int = Field(default=0, ge=-1000, le=1000, description="higher first when several fire at once")
    respect_quiet_hours: bool = True
    schema_version: Literal[1] = 1

    @property
    def first_action(self) -> Action:
        """The action, or a journey's first action step's: what a decision about entering it names."""
        if self.action is not None:
            return self.action
        return next(step.action for step in self.steps if isinstance(step, ActionStep))

    def step_index(self, name: str) -> int | None:
        return next((i for i, step in enumerate(self.steps) if step.name == name), None)

    @model_validator(mode="after")
    def _action_or_steps(self) -> Campaign:
        if (self.action is None) == (not self.steps):
            raise ValueError("a campaign has an action or steps (a journey), exactly one of the two")
        names = [step.name for step in self.steps]
        if len(set(names)) != len(names):
            raise ValueError("step names must be unique")
        for index, step in enumerate(self.steps):
            for target in targets_of(step):
                to = self.step_index(target)
                if to is None:
                    raise ValueError(f"step {step.name!r} goes to {target!r}, which is not a step")
                if to <= index:
                    # Forward only: every run ends, and one input moves a customer a bounded way.
                    raise ValueError(
                        f"step {step.name!r} goes back to {target!r}: a journey only moves forward"
                    )
        if self.steps and not any(isinstance(step, ActionStep) for step in self.steps):
            raise ValueError("a journey needs at least one action step")
        return self

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not ID_PATTERN.match(value):
            raise ValueError("ids are 1-64 of a-z 0-9 _ - and start with a letter or digit")
        return value

    @field_validator("reentry", mode="before")
    @classmethod
    def _reentry_of_old(cls, value: object) -> object:
        """Definitions stored (and clients written) before the modes said `reentry` as a bool."""
        if isinstance(value, bool):
            return "always" if value else "never"
        return value

    @field_validator("reentry_after_days")
    @classmethod
    def _reentry_days(cls, value: float | None, info: ValidationInfo) -> float | None:
        """The days go with `after_days` and only with it (checked here, not on the whole model,
        so that the error names this field)."""
        reentry = info.data.get("reentry")  # absent when `reentry` itself was refused
        if reentry == "after_days" and value is None:
            raise ValueError("reentry after_days needs the number of days (reentry_after_days)")
        if reentry is not None and reentry != "after_days" and value is not None:
            raise ValueError(f"reentry_after_days goes with reentry after_days, not with {reentry}")
        return value
