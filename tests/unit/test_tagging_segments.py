"""Segment queries as set algebra (services/tagging/segments.py), checked against the meaning of
a filter on in-memory customers: the signed counts and the stored-result plans must name exactly
the customers a direct reading of the filter does, for any population and any filter."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.tagging.paging import PageCursor
from services.tagging.rules import Layer, Orientation, Stage
from services.tagging.segments import (
    EVERYONE,
    EVERYONE_GROUP,
    RESULT,
    Activity,
    Band,
    Operand,
    SegmentQuery,
    SetOp,
    count_terms,
    live_scan,
    materialisation,
    scan_of,
)

TAGS = ("ripple", "price_sensitive", "interest:tech")


@dataclass(frozen=True)
class Customer:
    id: str
    layer: Layer
    orientation: Orientation
    stage: Stage
    band: Band | None
    activity: Activity | None
    tags: frozenset[str]

    def matches(self, query: SegmentQuery) -> bool:
        """The filter read directly: any of each dimension's values, every tag, none excluded."""
        wanted = (
            (query.layers, self.layer),
            (query.orientations, self.orientation),
            (query.stages, self.stage),
            (query.bands, self.band),
            (query.activities, self.activity),
        )
        return (
            all(not values or held in values for values, held in wanted)
            and set(query.tags_all) <= self.tags
            and not set(query.tags_none) & self.tags
        )


def customers() -> st.SearchStrategy[list[Customer]]:
    one = st.builds(
        Customer,
        id=st.just(""),
        layer=st.sampled_from(Layer),
        orientation=st.sampled_from(Orientation),
        stage=st.sampled_from(Stage),
        band=st.none() | st.sampled_from(Band),
        activity=st.none() | st.sampled_from(Activity),
        tags=st.frozensets(st.sampled_from(TAGS)),
    )
    return st.lists(one, max_size=40).map(
        lambda drawn: [replace(customer, id=f"c{n}") for n, customer in enumerate(drawn)]
    )


def queries() -> st.SearchStrategy[SegmentQuery]:
    def some(values: Iterable[str]) -> st.SearchStrategy[list[Any]]:
        return st.lists(st.sampled_from(list(values)), max_size=3)

    return st.builds(
        SegmentQuery.of,
        layers=some(Layer),
        orientations=some(Orientation),
        stages=some(Stage),
        bands=some(Band),
        activities=some(Activity),
        tags_all=some(TAGS),
        tags_none=some(TAGS),
    )


def read_model_sets(population: list[Customer]) -> dict[Operand, set[str]]:
    """The read model's sets: everyone, one per value held, one per tag; the unscored in no band
    (activity) set but in the dimension's `unset` set."""
    sets: dict[Operand, set[str]] = {EVERYONE: {c.id for c in population}}
    for c in population:
        held = [("layer", c.layer), ("orientation", c.orientation), ("stage", c.stage)]
        held += [("band", c.band), ("activity", c.activity), *(("tag", t) for t in c.tags)]
        for dimension, value in held:
            key = (dimension, str(value)) if value is not None else ("unset", dimension)
            sets.setdefault(key, set()).add(c.id)
    return sets


def run(ops: list[SetOp], sets: dict[Operand, set[str]]) -> set[str]:
    """What SUNIONSTORE/SINTERSTORE/SDIFFSTORE leave in RESULT."""
    stored = dict(sets)
    for op in ops:
        first, *rest = (stored.get(source, set()) for source in op.sources)
        if op.kind == "union":
            stored[op.destination] = first.union(*rest)
        elif op.kind == "inter":
            stored[op.destination] = first.intersection(*rest)
        else:
            stored[op.destination] = first.difference(*rest)
    return stored[RESULT]


@settings(max_examples=300, deadline=None)
@given(population=customers(), query=queries())
def test_a_count_adds_up_to_the_customers_the_filter_names(
    population: list[Customer], query: SegmentQuery
) -> None:
    sets = read_model_sets(population)
    sizes = {key: len(members) for key, members in sets.items() if key != EVERYONE}
    terms = count_terms(query.plan(), sizes, max_terms=10_000)
    assert terms is not None
    counted = 0
    for sign, segments in terms:
        counted += sign * len(set.intersection(sets[EVERYONE], *(sets.get(s, set()) for s in segments)))
    assert counted == sum(1 for c in population if c.matches(query))


@settings(max_examples=300, deadline=None)
@given(population=customers(), query=queries())
def test_a_stored_result_holds_exactly_the_customers_the_filter_names(
    population: list[Customer], query: SegmentQuery
) -> None:
    sets = read_model_sets(population)
    sizes = {key: len(members) for key, members in sets.items() if key != EVERYONE}
    ops = materialisation(query.plan(), sizes)
    assert run(ops, sets) == {c.id for c in population if c.matches(query)}
    # Every scratch set is written before it is read, and the live sets are only read.
    written: set[str] = set()
    for op in ops:
        assert all(not isinstance(s, str) or s in written or s == EVERYONE for s in op.sources)
        assert isinstance(op.destination, str) and op.destination != EVERYONE
        written.add(op.destination)


def test_repeats_and_order_do_not_change_a_query_or_its_digest() -> None:
    one = SegmentQuery.of(layers=[Layer.intent, Layer.prospect, Layer.intent], tags_all=["b", "a"])
    other = SegmentQuery.of(layers=[Layer.prospect, Layer.intent], tags_all=["a", "b", "a"])
    assert one == other and one.digest() == other.digest()
    assert one.layers == (Layer.intent, Layer.prospect)
    assert SegmentQuery.of(tags_all=["a"]).digest() != SegmentQuery.of(tags_none=["a"]).digest()


def test_plain_intersections_are_counted_in_one_command() -> None:
    assert SegmentQuery.of(layers=[Layer.owner], tags_all=["a", "b"]).plan().intersection_only
    assert not SegmentQuery.of(layers=[Layer.owner, Layer.intent]).plan().intersection_only
    assert not SegmentQuery.of(tags_none=["a"]).plan().intersection_only


def test_any_of_a_dimension_is_counted_the_cheaper_way() -> None:
    bands = {("band", "low"): 500, ("band", "medium"): 300, ("band", "high"): 100, ("band", "hot"): 50}
    activities = {("activity", "active_7d"): 400, ("activity", "active_30d"): 300}
    unset = {("activity", "dormant"): 200, ("unset", "band"): 3, ("unset", "activity"): 3}
    layers = {("layer", "prospect"): 600, ("layer", "intent"): 250, ("layer", "owner"): 100}
    sizes = bands | activities | unset | layers | {("layer", "defeated"): 5, ("tag", "t"): 40}
    # Low or medium band, active: everyone but the other bands and the unscored, minus the
    # dormant and the unscored; the large sets of the values chosen are never intersected.
    query = SegmentQuery.of(
        bands=[Band.low, Band.medium], activities=[Activity.active_7d, Activity.active_30d]
    )
    terms = count_terms(query.plan(), sizes)
    assert terms is not None
    others = [("band", "high"), ("band", "hot"), ("unset", "band")]
    inactive = [("activity", "dormant"), ("unset", "activity")]
    assert sorted(terms) == sorted(
        [(1, ()), *((-1, (s,)) for s in others + inactive)]
        + [(1, tuple(sorted((b, a)))) for b in others for a in inactive]
    )
    # With a small set to intersect with, the values themselves are cheaper.
    few = SegmentQuery.of(layers=[Layer.owner, Layer.defeated], tags_all=["t"])
    assert count_terms(few.plan(), sizes) == [
        (1, (("layer", "defeated"), ("tag", "t"))),
        (1, (("layer", "owner"), ("tag", "t"))),
    ]
    # Every value of a dimension is everyone: no term at all for it.
    assert count_terms(SegmentQuery.of(stages=list(Stage)).plan(), {}) == [(1, ())]


def test_a_stored_result_starts_from_the_smallest_sets() -> None:
    query = SegmentQuery.of(
        layers=[Layer.prospect, Layer.intent], bands=[Band.high, Band.hot], tags_all=["a", "b"]
    )
    sizes = {("tag", "a"): 500, ("tag", "b"): 20, ("band", "high"): 300, ("band", "hot"): 100}
    sizes |= {("layer", "prospect"): 5000, ("layer", "intent"): 2000}
    ops = materialisation(query.plan(), sizes)
    first = ops[0]
    assert (first.kind, first.sources) == ("inter", (("tag", "b"), ("tag", "a")))
    # Narrowed by the bands (the smaller "any of") before the layers, never a union of layers.
    assert [op.sources[1] for op in ops if op.kind == "inter"][1:] == [
        ("band", "high"),
        ("band", "hot"),
        ("layer", "intent"),
        ("layer", "prospect"),
    ]
    unions = [op for op in ops if op.kind == "union"]
    assert all(all(isinstance(s, str) for s in op.sources) for op in unions)


def test_a_result_that_is_one_live_set_is_copied_so_that_pages_read_a_set_that_holds_still() -> None:
    ops = materialisation(SegmentQuery.of(stages=[Stage.die_hard_fan]).plan(), {})
    assert ops == [SetOp("union", RESULT, (("stage", "die_hard_fan"),))]
    assert materialisation(SegmentQuery.of().plan(), {}) == [SetOp("union", RESULT, (EVERYONE,))]


def test_a_cursor_reads_back_as_given_and_refuses_what_it_did_not_give() -> None:
    given = [PageCursor("abc123", 4711, None, 9000, 3, 45), PageCursor("abc123", None, -1, 12, total=7)]
    for cursor in (*given, PageCursor("abc123", None, 2, 0)):
        assert PageCursor.decode(cursor.encode()) == cursor
    assert PageCursor.decode("0") is None and PageCursor.decode("") is None
    forged = [PageCursor("ab.c", 1, None, 2), PageCursor("abc", -1, None, 2), PageCursor("abc", None, -2, 0)]
    for bad in ("garbage", "Zm9v", *(cursor.encode() for cursor in forged)):
        with pytest.raises(ValueError, match="not a cursor"):
            PageCursor.decode(bad)
    with pytest.raises(ValueError, match="either"):
        PageCursor("abc", 1, 0, 0)


@settings(max_examples=200, deadline=None)
@given(population=customers(), query=queries())
def test_a_live_page_keeps_exactly_the_members_of_the_set_read_that_are_in_the_segment(
    population: list[Customer], query: SegmentQuery
) -> None:
    sets = read_model_sets(population)
    plan = query.plan()
    singles = [n for n, group in enumerate(plan.all_of) if len(group) == 1]
    for group in [EVERYONE_GROUP, *singles]:
        scan = scan_of(plan, group, {}, len(population))
        read = sets[EVERYONE] if group == EVERYONE_GROUP else sets.get(plan.all_of[group][0], set())
        ids = sorted(read)
        membership = {s: [i in sets.get(s, set()) for i in ids] for s in scan.checks.tested}
        kept = {i for i, keep in zip(ids, scan.checks.passes(membership, len(ids)), strict=True) if keep}
        assert kept == {c.id for c in population if c.matches(query)}


def test_a_large_segment_common_in_the_set_read_is_paged_live_and_others_are_stored() -> None:
    everyone = 100_000
    sizes = {("band", "low"): 50_000, ("band", "medium"): 25_000, ("tag", "ripple"): 25_000}
    sizes |= {("layer", "owner"): 8_000, ("tag", "recalled"): 300}
    # Everyone but the recalled: read everyone's set, nearly all pass.
    scan = live_scan(SegmentQuery.of(tags_none=["recalled"]).plan(), sizes, everyone)
    assert scan is not None and scan.group == EVERYONE_GROUP and scan.pass_rate == pytest.approx(0.997)
    # Low band without ripple: read the low band (the one single set), 3 in 4 pass.
    query = SegmentQuery.of(bands=[Band.low], tags_none=["ripple"])
    scan = live_scan(query.plan(), sizes, everyone)
    assert scan is not None and scan.group == 0 and scan.pass_rate == pytest.approx(0.75)
    assert scan.checks.tested == (("tag", "ripple"),)
    # Too small to be worth reading live: stored.
    assert live_scan(SegmentQuery.of(layers=[Layer.owner]).plan(), sizes, everyone) is None
    # Read through the one single set (ripple): live while 3 in 4 of it pass, stored once its
    # members are rare in it (not worth reading 10 members for each one kept).
    query = SegmentQuery.of(bands=[Band.low, Band.medium], tags_all=["ripple"], tags_none=["recalled"])
    common = sizes | {("tag", "ripple"): 90_000}
    assert live_scan(query.plan(), common, everyone) is not None
    rare = common | {("band", "low"): 5_000, ("band", "medium"): 2_000}
    assert live_scan(query.plan(), rare, everyone) is None
    with pytest.raises(ValueError, match="not one set"):
        scan_of(SegmentQuery.of(bands=[Band.low, Band.hot]).plan(), 0, sizes, everyone)
