"""Tag rules as data: declarative conditions ops add, change and delete through the API.

A rule names a tag and the conditions under which a customer has it; every condition must hold
(AND). Rules are evaluated after every input a customer gets, so a tag comes and goes with its
conditions. Windowed counts are measured back from the customer's latest event time, which
keeps replays deterministic; a rule counts events from the moment it is in force, not before.

Rules may test tags of other rules: they are evaluated in dependency order, and a set of rules
whose tags depend on each other in a cycle is refused.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.events import CUSTOM_TYPE, EVENT_TYPES


class Layer(StrEnum):
    prospect = "prospect"
    intent = "intent"
    defeated = "defeated"
    owner = "owner"


class Orientation(StrEnum):
    rational = "rational"
    emotional = "emotional"
    unknown = "unknown"


class Stage(StrEnum):
    newcomer = "newcomer"
    active_fan = "active_fan"
    die_hard_fan = "die_hard_fan"


TAG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.:-]{0,63}$")
# Tags the built-in families own; a rule may test them but not define them.
BUILTIN_TAGS = frozenset({"price_sensitive", "ripple", "recalled"})
BUILTIN_PREFIXES = ("interest:", "rfm:", "level:", "defeat_reason:")
Percent = Annotated[float, Field(ge=0, le=100)]
PropertyValue = str | int | float | bool


def is_builtin_tag(tag: str) -> bool:
    return tag in BUILTIN_TAGS or tag.startswith(BUILTIN_PREFIXES)


class CountCondition(BaseModel):
    """At least `at_least` events of `types` (with properties equal to `where`) within the window."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    types: list[str] = Field(min_length=1, max_length=20)
    where: dict[str, PropertyValue] = Field(default_factory=dict, max_length=10)
    at_least: int = Field(ge=1, le=1000)
    within_days: float | None = Field(default=None, gt=0, le=366, description="None: ever")

    @field_validator("types")
    @classmethod
    def _known_types(cls, types: list[str]) -> list[str]:
        unknown = [t for t in types if t not in EVENT_TYPES and not CUSTOM_TYPE.match(t)]
        if unknown:
            raise ValueError(f"unknown event types: {', '.join(sorted(unknown))}")
        return sorted(set(types))

    @property
    def key(self) -> str:
        """Names this condition's evidence in a profile; an edited condition starts afresh."""
        return hashlib.sha1(orjson.dumps(self.model_dump(), option=orjson.OPT_SORT_KEYS)).hexdigest()[:12]

    def matches(self, event_type: str, properties: Mapping[str, object]) -> bool:
        return event_type in self.types and all(properties.get(k) == v for k, v in self.where.items())


class TagRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tag: str = Field(description="the tag this rule sets, e.g. `live_fan`")
    description: str = Field(default="", max_length=500)
    counts: list[CountCondition] = Field(default_factory=list, max_length=10)
    intent_pct_at_least: Percent | None = None
    intent_pct_below: Percent | None = None
    layers: list[Layer] = Field(default_factory=list, description="any of them")
    orientations: list[Orientation] = Field(default_factory=list, description="any of them")
    stages: list[Stage] = Field(default_factory=list, description="any of them")
    tags_all: list[str] = Field(default_factory=list, description="the customer has every one")
    tags_none: list[str] = Field(default_factory=list, description="the customer has none of them")

    @field_validator("tag")
    @classmethod
    def _tag_name(cls, tag: str) -> str:
        if not TAG_PATTERN.match(tag):
            raise ValueError("tags are 1-64 of a-z 0-9 _ . : - and start with a letter or digit")
        if is_builtin_tag(tag):
            raise ValueError(f"{tag!r} belongs to a built-in tag family")
        return tag

    @model_validator(mode="after")
    def _sensible(self) -> TagRule:
        conditions = (
            self.counts,
            self.intent_pct_at_least is not None,
            self.intent_pct_below is not None,
            self.layers,
            self.orientations,
            self.stages,
            self.tags_all,
            self.tags_none,
        )
        if not any(conditions):
            raise ValueError("a rule needs at least one condition")
        if self.tag in self.tags_all or self.tag in self.tags_none:
            raise ValueError("a rule cannot test its own tag")
        if set(self.tags_all) & set(self.tags_none):
            raise ValueError("tags_all and tags_none overlap")
        low, high = self.intent_pct_at_least, self.intent_pct_below
        if low is not None and high is not None and low >= high:
            raise ValueError("intent_pct_at_least must be below intent_pct_below")
        return self


@dataclass(frozen=True)
class RuleSet:
    """The rules in force, in evaluation order, with the count conditions they need evidence for."""

    version: int
    rules: tuple[TagRule, ...] = ()
    conditions: Mapping[str, CountCondition] = field(default_factory=dict)  # by key

    @classmethod
    def of(cls, version: int, rules: Iterable[TagRule]) -> RuleSet:
        ordered = tuple(evaluation_order(rules))
        return cls(version, ordered, {c.key: c for rule in ordered for c in rule.counts})


def evaluation_order(rules: Iterable[TagRule]) -> list[TagRule]:
    """Rules after the rules whose tags they test; ValueError on duplicates or a cycle."""
    by_tag: dict[str, TagRule] = {}
    for rule in rules:
        if rule.tag in by_tag:
            raise ValueError(f"two rules set {rule.tag!r}")
        by_tag[rule.tag] = rule
    ordered: list[TagRule] = []
    state: dict[str, str] = {}  # tag -> "visiting" | "done"

    def visit(tag: str, path: tuple[str, ...]) -> None:
        if state.get(tag) == "done":
            return
        if state.get(tag) == "visiting":
            raise ValueError(f"tag rules depend on each other in a cycle: {' -> '.join((*path, tag))}")
        state[tag] = "visiting"
        rule = by_tag[tag]
        for needed in sorted(set(rule.tags_all) | set(rule.tags_none)):
            if needed in by_tag:
                visit(needed, (*path, tag))
        state[tag] = "done"
        ordered.append(rule)

    for tag in sorted(by_tag):
        visit(tag, ())
    return ordered


@dataclass(frozen=True, slots=True)
class Evidence:
    """What a count condition has seen of one customer: a total, and the latest times (newest last)."""

    total: int = 0
    recent: tuple[datetime, ...] = ()


def record_hit(evidence: Evidence | None, at: datetime, condition: CountCondition) -> Evidence:
    """Count one matching event; keep only as many times as the condition can need."""
    evidence = evidence or Evidence()
    if condition.within_days is None:
        return Evidence(evidence.total + 1)
    recent = tuple(sorted((*evidence.recent, at))[-condition.at_least :])
    return Evidence(evidence.total + 1, recent)


def merge_evidence(a: Evidence, b: Evidence, condition: CountCondition | None) -> Evidence:
    keep = condition.at_least if condition is not None else max(len(a.recent), len(b.recent))
    recent = tuple(sorted((*a.recent, *b.recent))[-keep:]) if keep else ()
    return Evidence(a.total + b.total, recent)


def count_holds(condition: CountCondition, evidence: Evidence | None, now: datetime | None) -> bool:
    if evidence is None:
        return False
    if condition.within_days is None or now is None:
        return evidence.total >= condition.at_least
    since = now - timedelta(days=condition.within_days)
    return sum(1 for at in evidence.recent if at > since) >= condition.at_least


@dataclass(frozen=True)
class RuleContext:
    """What a rule can see of a customer."""

    layer: Layer
    orientation: Orientation
    stage: Stage
    intent_pct: float | None
    evidence: Mapping[str, Evidence]
    now: datetime | None  # the customer's latest event time


def rule_tags(rules: RuleSet, context: RuleContext, builtin: frozenset[str]) -> set[str]:
    """The tags the rules give a customer who has the `builtin` tags."""
    tags = set(builtin)
    for rule in rules.rules:
        if _holds(rule, context, tags):
            tags.add(rule.tag)
    return tags - builtin


def _holds(rule: TagRule, context: RuleContext, tags: set[str]) -> bool:
    pct = context.intent_pct
    if rule.intent_pct_at_least is not None and (pct is None or pct < rule.intent_pct_at_least):
        return False
    if rule.intent_pct_below is not None and pct is not None and pct >= rule.intent_pct_below:
        return False
    if rule.layers and context.layer not in rule.layers:
        return False
    if rule.orientations and context.orientation not in rule.orientations:
        return False
    if rule.stages and context.stage not in rule.stages:
        return False
    if any(t not in tags for t in rule.tags_all) or any(t in tags for t in rule.tags_none):
        return False
    return all(count_holds(c, context.evidence.get(c.key), context.now) for c in rule.counts)
