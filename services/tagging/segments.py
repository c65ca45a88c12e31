"""Segment queries: which customers a filter names, as set algebra over the read model's sets.

Pure: no Redis or HTTP. The read model keeps one set of customers per value of every dimension
(read_model.py); a query is answered inside Redis by combining them (segment_queries.py). Here is
what a query means and how it becomes set operations (paging.py has the cursor of its pages).

Meaning: a customer is in a segment when, for every dimension given, they hold one of its values
(OR within a dimension, AND across), they have every tag of `tags_all` and none of `tags_none`.

Two facts make counting cheap. Every set is a subset of everyone's (`seg:all`): a merged-away
customer leaves them all. And the values of one dimension are disjoint (a customer has one layer,
at most one band): so the size of "any of a dimension's values" is the sum of the sizes, and a
count is a signed sum of intersection sizes (SINTERCARD), with no union stored.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from itertools import count, product
from math import prod
from typing import Literal, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict

from shared.scores import Activity, Band

from .rules import Layer, Orientation, Stage

StrT = TypeVar("StrT", bound=str)
# (dimension, value): one set of the read model, e.g. ("layer", "owner"), ("tag", "ripple").
Segment = tuple[str, str]
# The sets a query may take "any of": each dimension's values are disjoint (see above).
DISJOINT_DIMENSIONS = ("layer", "orientation", "stage", "band", "activity")
Everyone = Literal["everyone"]
EVERYONE: Everyone = "everyone"
# Every value of each dimension. A customer holds one of layer, orientation and stage, and one
# band (activity) or else is in the dimension's `unset` set (read_model.py): so "any of these
# values" is also "everyone but the others", which is cheaper to count when the others are few.
VALUES: dict[str, tuple[StrEnum, ...]] = {
    "layer": tuple(Layer),
    "orientation": tuple(Orientation),
    "stage": tuple(Stage),
    "band": tuple(Band),
    "activity": tuple(Activity),
}
SCORED_DIMENSIONS = ("band", "activity")
# A count as a sum of more intersections than this is materialised instead.
MAX_COUNT_TERMS = 64


@dataclass(frozen=True)
class Plan:
    """A query as sets: in one segment of every group of `all_of` (a group of several is one
    dimension's values, disjoint), and in none of `none_of`. No groups means everyone.

    `complements[i]` holds the other sets of group i's dimension (its other values, and the
    unscored for band and activity; None for a tag): "any of the group" is also "everyone but
    those".
    """

    all_of: tuple[tuple[Segment, ...], ...]
    none_of: tuple[Segment, ...]
    complements: tuple[tuple[Segment, ...] | None, ...]  # one per group of all_of

    @property
    def intersection_only(self) -> bool:
        """Countable by one SCARD or SINTERCARD: no "any of" and nothing excluded."""
        return not self.none_of and all(len(group) == 1 for group in self.all_of)

    @property
    def tested(self) -> tuple[Segment, ...]:
        """The sets a customer's membership in the segment is decided by."""
        return tuple(dict.fromkeys((*(s for g in self.all_of for s in g), *self.none_of)))

    @property
    def segments(self) -> tuple[Segment, ...]:
        """Every set the query names, complements included."""
        complements = (s for group in self.complements if group for s in group)
        return tuple(dict.fromkeys((*self.tested, *complements)))

    def without(self, group: int) -> Plan:
        """The query but for one of its groups."""
        keep = [n for n in range(len(self.all_of)) if n != group]
        return Plan(
            all_of=tuple(self.all_of[n] for n in keep),
            none_of=self.none_of,
            complements=tuple(self.complements[n] for n in keep),
        )

    def passes(self, membership: Mapping[Segment, Sequence[bool]], count: int) -> list[bool]:
        """Which of `count` customers are in the segment, given whether each is in each of the
        `tested` sets (SMISMEMBER's answers, in the same order)."""
        return [
            all(any(membership[s][n] for s in group) for group in self.all_of)
            and not any(membership[s][n] for s in self.none_of)
            for n in range(count)
        ]


class SegmentQuery(BaseModel):
    """A segment filter in its canonical form: each list without repeats, sorted, so that the
    same question always has the same digest (and shares its stored result)."""

    model_config = ConfigDict(frozen=True)

    layers: tuple[Layer, ...] = ()
    orientations: tuple[Orientation, ...] = ()
    stages: tuple[Stage, ...] = ()
    bands: tuple[Band, ...] = ()
    activities: tuple[Activity, ...] = ()
    tags_all: tuple[str, ...] = ()
    tags_none: tuple[str, ...] = ()

    @classmethod
    def of(
        cls,
        *,
        layers: Sequence[Layer] | None = None,
        orientations: Sequence[Orientation] | None = None,
        stages: Sequence[Stage] | None = None,
        bands: Sequence[Band] | None = None,
        activities: Sequence[Activity] | None = None,
        tags_all: Sequence[str] | None = None,
        tags_none: Sequence[str] | None = None,
    ) -> SegmentQuery:
        return cls(
            layers=_canonical(layers),
            orientations=_canonical(orientations),
            stages=_canonical(stages),
            bands=_canonical(bands),
            activities=_canonical(activities),
            tags_all=_canonical(tags_all),
            tags_none=_canonical(tags_none),
        )

    def plan(self) -> Plan:
        chosen = (self.layers, self.orientations, self.stages, self.bands, self.activities)
        groups: list[tuple[Segment, ...]] = []
        complements: list[tuple[Segment, ...] | None] = []
        for name, values in zip(DISJOINT_DIMENSIONS, chosen, strict=True):
            if not values:
                continue
            groups.append(tuple((name, str(v)) for v in values))
            others = [(name, str(v)) for v in VALUES[name] if v not in values]
            others += [("unset", name)] if name in SCORED_DIMENSIONS else []
            complements.append(tuple(others))
        groups += [(("tag", tag),) for tag in self.tags_all]
        complements += [None] * len(self.tags_all)
        return Plan(
            all_of=tuple(groups),
            none_of=tuple(("tag", tag) for tag in self.tags_none),
            complements=tuple(complements),
        )

    def digest(self) -> str:
        """Names the query's stored result and ties page cursors to the query they page."""
        canonical = orjson.dumps(self.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(canonical).hexdigest()[:20]


def _canonical(values: Sequence[StrT] | None) -> tuple[StrT, ...]:
    return tuple(sorted(set(values or ())))


# --- Counting: a signed sum of intersection sizes, nothing stored -------------------------------

# (sign, segments): add sign x the size of the segments' intersection (everyone's for none).
CountTerm = tuple[int, tuple[Segment, ...]]


def count_terms(
    plan: Plan, sizes: Mapping[Segment, int], max_terms: int = MAX_COUNT_TERMS
) -> list[CountTerm] | None:
    """The count as SCARDs and SINTERCARDs, the cheapest way found; None if that takes more than
    `max_terms` of them.

    Any of a dimension's disjoint values is the sum over them, or everyone minus the sum over
    the dimension's other sets: "not defeated" beats "prospect, intent or owner". None of the
    excluded tags is inclusion-exclusion: |P - (N1 u N2)| = |P| - |P n N1| - |P n N2| +
    |P n N1 n N2|. Of the ways to write each group, the one whose SINTERCARDs read the fewest
    members wins (`sizes`, of the sets named), then the one with fewer terms. Terms that cancel
    are left out.
    """
    best: tuple[tuple[int, int], list[CountTerm]] | None = None  # ((members read, terms), terms)
    choices = ([False] if complement is None else [False, True] for complement in plan.complements)
    for sides in product(*choices):
        factors: list[list[tuple[int, Segment | None]]] = []
        for group, complement, flip in zip(plan.all_of, plan.complements, sides, strict=True):
            if flip and complement is not None:
                factors.append([(1, None), *((-1, segment) for segment in complement)])
            else:
                factors.append([(1, segment) for segment in group])
        factors += [[(1, None), (-1, segment)] for segment in plan.none_of]
        if prod(len(factor) for factor in factors) > max_terms:
            continue
        terms = _expand(factors)
        cost = (sum(_intersection_cost(segments, sizes) for _, segments in terms), len(terms))
        if best is None or cost < best[0]:
            best = (cost, terms)
    return None if best is None else best[1]


def _expand(factors: list[list[tuple[int, Segment | None]]]) -> list[CountTerm]:
    total: Counter[tuple[Segment, ...]] = Counter()
    for choice in product(*factors):
        sign = prod(sign for sign, _ in choice)
        total[tuple(sorted({segment for _, segment in choice if segment is not None}))] += sign
    return [(sign, segments) for segments, sign in sorted(total.items()) if sign]


def _intersection_cost(segments: tuple[Segment, ...], sizes: Mapping[Segment, int]) -> int:
    """Members SINTERCARD reads: the smallest set's, looked up in each other set (SCARD: none)."""
    if len(segments) < 2:
        return 0
    return min(sizes.get(segment, 0) for segment in segments) * (len(segments) - 1)


# --- Materialising: set operations into a stored result, for pages --------------------------

# What a set operation reads or writes: a segment, everyone (EVERYONE), a scratch set or the result.
RESULT = "result"
Operand = Segment | str  # str: EVERYONE, RESULT or a scratch name "scratch:<n>"


@dataclass(frozen=True)
class SetOp:
    """SUNIONSTORE, SINTERSTORE or SDIFFSTORE `sources` into `destination`."""

    kind: Literal["union", "inter", "diff"]
    destination: str
    sources: tuple[Operand, ...]


def materialisation(plan: Plan, sizes: Mapping[Segment, int]) -> list[SetOp]:
    """Set operations that leave the query's members in RESULT, cheapest first.

    Work in Redis is proportional to the sets it writes, so the plan keeps them small: start
    from the intersection of the single segments (or else the smallest "any of" group's
    union), and narrow it by each further group as the union of its intersections with each
    value, (S n A) u (S n B), which writes no more than the narrowed set twice, where the union
    of A and B could be most of the customers. Excluded tags come off last.
    """
    ops: list[SetOp] = []
    scratch = (f"scratch:{n}" for n in count())
    singles = [group[0] for group in plan.all_of if len(group) == 1]
    anys = sorted(
        (group for group in plan.all_of if len(group) > 1),
        key=lambda group: sum(sizes.get(segment, 0) for segment in group),
    )
    current: Operand
    if len(singles) > 1:
        current = next(scratch)
        ops.append(SetOp("inter", current, tuple(sorted(singles, key=lambda s: sizes.get(s, 0)))))
    elif singles:
        current = singles[0]  # a live set is read, not copied, until the result
    elif anys:
        current = next(scratch)
        ops.append(SetOp("union", current, anys.pop(0)))
    else:
        current = EVERYONE
    for group in anys:
        parts = [next(scratch) for _ in group]
        ops += [SetOp("inter", part, (current, value)) for part, value in zip(parts, group, strict=True)]
        current = next(scratch)
        ops.append(SetOp("union", current, tuple(parts)))
    if plan.none_of:
        ops.append(SetOp("diff", RESULT, (current, *plan.none_of)))
    elif ops and ops[-1].destination == current:
        ops[-1] = SetOp(ops[-1].kind, RESULT, ops[-1].sources)  # the last set made is the result
    else:
        ops.append(SetOp("union", RESULT, (current,)))  # a copy: pages need a set that holds still
    return ops


# --- Paging live: a large segment read from one live set, filtered -------------------------

# A segment expected to hold fewer customers than this is stored for its pages: a copy of a
# few thousand members is cheap, and its pages are exact. A larger one is paged live, if that
# reads few enough members per customer found.
LIVE_PAGING_FROM = 10_000
MIN_PASS_RATE = 0.25  # live pages read at most about 4 members for each customer they keep
EVERYONE_GROUP = -1


@dataclass(frozen=True)
class LiveScan:
    """Pages of the segment read from one live set by SSCAN: everyone's (`group` -1) or the
    single segment of one group of the plan, keeping the members that pass the other groups and
    the exclusions (`checks`). About `pass_rate` of the members read pass."""

    group: int
    checks: Plan
    pass_rate: float


def live_scan(plan: Plan, sizes: Mapping[Segment, int], everyone: int) -> LiveScan | None:
    """How to page the segment live, or None when it is better stored.

    Storing costs Redis a copy of every member, once; paging live costs each page the members
    it reads. So a segment is paged live when it is large (by the sets' sizes, as if the
    dimensions were independent) and its members are not too rare in the set read: the
    smallest single set of the query, or everyone's.
    """
    singles = [(sizes.get(g[0], 0), n) for n, g in enumerate(plan.all_of) if len(g) == 1]
    driven, group = min(singles, default=(everyone, EVERYONE_GROUP))
    scan = scan_of(plan, group, sizes, everyone)
    if driven * scan.pass_rate < LIVE_PAGING_FROM or scan.pass_rate < MIN_PASS_RATE:
        return None
    return scan


def scan_of(plan: Plan, group: int, sizes: Mapping[Segment, int], everyone: int) -> LiveScan:
    """Paging live by the set of `group` (-1: everyone's); ValueError if it is not one set."""
    if group == EVERYONE_GROUP:
        checks = plan
    elif 0 <= group < len(plan.all_of) and len(plan.all_of[group]) == 1:
        checks = plan.without(group)
    else:
        raise ValueError(f"group {group} of the query is not one set")

    def share(group: tuple[Segment, ...]) -> float:
        return min(1.0, sum(sizes.get(segment, 0) for segment in group) / max(everyone, 1))

    pass_rate = prod(share(g) for g in checks.all_of) * prod(1 - share((s,)) for s in checks.none_of)
    return LiveScan(group, checks, pass_rate)
