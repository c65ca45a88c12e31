"""The per-customer fold every worker shares (shared/fold.py), with a toy domain: a tally of
what each customer did."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson
from pydantic import BaseModel

from shared.erasure import CustomerErased
from shared.fold import (
    MAX_HELD,
    MAX_PARKED,
    MAX_WAITING_CHARS,
    Barrier,
    CustomerFold,
    Delivery,
    FoldOutcome,
    Handover,
    fold_batch,
)
from shared.identity import IdentityMerged
from shared.ledger import MAX_ID_CHARS, MAX_LEDGER_PARTITIONS, Ledger, LedgerEntry, kept_id


class Did(BaseModel):
    input_id: str
    customer_id: str
    what: str


@dataclass(frozen=True)
class TallyRow:
    tally: tuple[str, ...] = ()
    ledger: Ledger = field(default_factory=Ledger)
    merged_into: str | None = None
    barrier: Barrier = field(default_factory=Barrier)


@dataclass
class Outcome(FoldOutcome):
    finished: list[str] = field(default_factory=list)


class Tally(CustomerFold[TallyRow, tuple[str, ...], Did | IdentityMerged | Handover, Outcome]):
    state_field = "tally"
    payload_types = (Did, IdentityMerged, Handover)

    def new_row(self, customer_id: str) -> TallyRow:
        return TallyRow()

    def input_id(self, payload: Did | IdentityMerged | Handover) -> str:
        return payload.merge_id if isinstance(payload, IdentityMerged) else payload.input_id  # type: ignore[union-attr]

    def joins(self, payload: Did | IdentityMerged | Handover) -> str | None:
        # "join:<merge id>": where the merged customer comes in (identity.joined, in a worker).
        what = getattr(payload, "what", "")
        return what.removeprefix("join:") if what.startswith("join:") else None

    def decode(self, raw: bytes) -> Did:
        return Did.model_validate_json(raw)

    def apply(self, state: tuple[str, ...], delivery: Delivery, outcome: Outcome) -> tuple[str, ...]:
        return (*state, delivery.payload.what)

    def merge_in(self, state: tuple[str, ...], handover: Handover, outcome: Outcome) -> tuple[str, ...]:
        return (*state, *handover.state)

    def hands_on(self, payload: Did | IdentityMerged | Handover) -> bool:
        return not (isinstance(payload, Did) and payload.what == "tick")

    def finish(self, customer_id, before, after, inputs, outcome: Outcome) -> TallyRow:
        outcome.finished.append(customer_id)
        return after


def did(customer: str, what: str, n: int) -> Delivery:
    payload = Did(input_id=f"{customer}-{n}", customer_id=customer, what=what)
    return Delivery("in/0", n, payload, payload.model_dump_json().encode())


def merge(merged: str, survivor: str) -> IdentityMerged:
    return IdentityMerged(
        merge_id=f"{merged}>{survivor}",
        merged_customer_id=merged,
        survivor_customer_id=survivor,
        identities={},
        merged_at=datetime(2026, 11, 30, tzinfo=UTC),
    )


class Table(dict[str, TallyRow]):
    def run(self, deliveries: list[Delivery], erased: frozenset[str] = frozenset()) -> Outcome:
        outcome = fold_batch(deliveries, self.get, Tally(), Outcome(), erased)
        self.update(outcome.records)
        for customer_id in outcome.erased:
            self.pop(customer_id, None)
        return outcome


def test_each_customers_inputs_in_order_once_and_finished_once_per_batch() -> None:
    table = Table()
    batch = [did("a", "click", 0), did("b", "view", 1), did("a", "share", 2)]
    outcome = table.run(batch)
    assert table["a"].tally == ("click", "share") and table["b"].tally == ("view",)
    assert outcome.finished == ["a", "b"] and outcome.counts == {"processed": 3}
    replay = table.run(batch)
    assert replay.counts == {"duplicate": 3} and not replay.records and not replay.finished


def tombstone(customer: str, n: int) -> Delivery:
    return Delivery("in/0", n, CustomerErased(customer))


def test_a_tombstone_drops_the_row_and_nothing_of_an_erased_customer_comes_back() -> None:
    table = Table()
    table.run([did("a", "click", 0), did("b", "view", 1)])
    # The worker knows "a" is erased (ingest wrote the record before the tombstone): its inputs
    # before the tombstone in the batch are dropped too, and the row goes.
    outcome = table.run([did("a", "share", 2), tombstone("a", 3), did("b", "share", 4)], frozenset({"a"}))
    assert outcome.erased == ["a"] and "a" not in outcome.records and "a" not in table
    assert outcome.counts == {"erased": 1, "dropped_erased": 1, "processed": 1}
    assert table["b"].tally == ("view", "share")
    # Late: a replay, a tick, an event on its way. Dropped, and no row is made for them.
    late = table.run([did("a", "click", 0), did("a", "late", 9)], frozenset({"a"}))
    assert late.counts == {"dropped_erased": 2} and not late.records and not late.erased
    assert "a" not in table
    # A tombstone for a customer the worker never had still goes on (read models, next worker).
    assert table.run([tombstone("z", 10)]).erased == ["z"]


def test_a_merge_hands_the_state_over_and_later_inputs_follow_as_they_were_read() -> None:
    table = Table()
    table.run([did("new", "click", 0), did("old", "view", 1)])
    merged = table.run([Delivery("merges/0", 0, merge("new", "old"))])
    (handover,) = merged.handovers
    assert (handover.customer_id, handover.state, handover.handover_id) == ("old", ("click",), "new>old")
    assert table["new"] == TallyRow((), table["new"].ledger, "old")
    late = table.run([did("new", "share", 2), did("new", "tick", 3)])
    (late_handover,) = late.handovers  # the tick stays behind: the survivor keeps its own clock
    assert late.counts == {"handed_over": 2}
    assert orjson.loads(late_handover.input_json) == {
        "input_id": "new-2",
        "customer_id": "old",
        "what": "share",
    }
    received = table.run([Delivery("handovers/0", n, h) for n, h in enumerate([handover, late_handover])])
    # The state is held for the input that joins it; the late input is the survivor's own.
    assert table["old"].tally == ("view", "share") and received.counts == {"held": 1, "processed": 1}
    joined = table.run([did("old", "join:new>old", 5)])
    assert table["old"].tally == ("view", "share", "click", "join:new>old")
    assert joined.counts == {"merged_in": 1, "processed": 1} and table["old"].barrier.held == ()
    assert table.run([Delivery("handovers/0", 9, handover)]).counts == {"duplicate": 1}  # republished
    assert table.run([Delivery("handovers/1", 0, handover)]).counts == {"duplicate": 1}  # past the ledger


def test_merged_twice_a_handover_goes_onwards_and_a_second_merge_hands_nothing() -> None:
    table = Table()
    table.run([Delivery("merges/0", 0, merge("b", "a")), Delivery("merges/0", 1, merge("a", "root"))])
    (onward,) = table.run(
        [
            Delivery(
                "handovers/0",
                0,
                Handover(handover_id="x", customer_id="a", from_customer_id="b", state=("p",)),
            )
        ]
    ).handovers
    assert (onward.customer_id, onward.state) == ("root", ("p",))
    (empty,) = table.run([Delivery("merges/0", 2, merge("a", "root2"))]).handovers
    assert (empty.customer_id, empty.state, empty.input_json) == ("root", None, None)


def handover_of(merged: str, survivor: str, *state: str) -> Handover:
    return Handover(
        handover_id=f"{merged}>{survivor}", customer_id=survivor, from_customer_id=merged, state=state
    )


def test_a_merged_state_comes_in_where_it_is_joined_whichever_topic_is_read_first() -> None:
    # The survivor's own inputs, and the handover on another topic, in every interleaving.
    own = [did("old", "view", 0), did("old", "join:new>old", 1), did("old", "click", 2)]
    handover = Delivery("handovers/0", 0, handover_of("new", "old", "lead"))
    for at in range(len(own) + 1):
        for cut in range(len(own) + 2):  # and any batch boundary
            table = Table()
            inputs = [*own[:at], handover, *own[at:]]
            table.run(inputs[:cut])
            table.run(inputs[cut:])
            row = table["old"]
            assert row.tally == ("view", "lead", "join:new>old", "click"), (at, cut)
            assert row.barrier == Barrier(joined=("new>old",)), (at, cut)


def test_a_merge_away_waits_behind_a_join_and_hands_over_the_joined_state() -> None:
    table = Table()
    table.run([did("b", "join:c>b", 0), Delivery("in/0", 1, merge("b", "a"))])
    assert table["b"].merged_into is None and len(table["b"].barrier.parked) == 2
    outcome = table.run([Delivery("handovers/0", 0, handover_of("c", "b", "from-c"))])
    (handover,) = outcome.handovers
    assert handover.state == ("from-c", "join:c>b") and table["b"].merged_into == "a"


def test_a_handover_that_does_not_come_is_waited_for_only_so_long() -> None:
    table = Table()
    table.run([did("old", "join:new>old", 0)])
    outcome = table.run([did("old", f"e{n}", n) for n in range(1, MAX_PARKED + 2)])
    assert outcome.counts["merge_overdue"] == 1
    row = table["old"]
    assert row.tally[0] == "join:new>old" and len(row.tally) == MAX_PARKED + 2
    assert row.barrier == Barrier(overdue=("new>old",))
    table.run([Delivery("handovers/0", 0, handover_of("new", "old", "late"))])  # merged in when it comes
    assert table["old"].tally[-1] == "late" and table["old"].barrier == Barrier(joined=("new>old",))


def test_handovers_never_joined_are_held_only_so_many() -> None:
    table = Table()
    handovers = [
        Delivery("handovers/0", n, handover_of(f"m{n}", "old", f"s{n}")) for n in range(MAX_HELD + 1)
    ]
    outcome = table.run(handovers)
    assert outcome.counts == {"held": MAX_HELD + 1, "merge_overdue": 1, "merged_in": 1}
    assert table["old"].tally == ("s0",) and len(table["old"].barrier.held) == MAX_HELD


def big(customer: str, n: int, chars: int) -> Delivery:
    payload = Did(input_id=f"{customer}-{n}", customer_id=customer, what="x" * chars)
    return Delivery("in/0", n, payload, payload.model_dump_json().encode())


def test_parked_inputs_are_bounded_by_their_size_too() -> None:
    table = Table()
    table.run([did("old", "join:new>old", 0)])
    size = MAX_WAITING_CHARS // 4
    outcome = table.run([big("old", n, size) for n in range(1, 5)])  # the fourth would pass the bound
    assert outcome.counts == {"parked": 3, "merge_overdue": 1, "processed": 5}
    assert table["old"].barrier == Barrier(overdue=("new>old",))
    assert len(table["old"].tally) == 5


def test_an_input_larger_than_the_bound_is_never_parked() -> None:
    table = Table()
    outcome = table.run([big("old", 0, MAX_WAITING_CHARS), did("old", "after", 1)])
    assert "parked" not in outcome.counts
    outcome = table.run([did("old", "join:new>old", 2), big("old", 3, MAX_WAITING_CHARS)])
    assert outcome.counts == {"parked": 1, "merge_overdue": 1, "processed": 2}
    assert table["old"].barrier.parked == ()


def test_held_handovers_are_bounded_by_their_size_too() -> None:
    table = Table()
    size = MAX_WAITING_CHARS // 2
    handovers = [Delivery("handovers/0", n, handover_of(f"m{n}", "old", "x" * size)) for n in range(3)]
    outcome = table.run(handovers)
    assert outcome.counts == {"held": 3, "merge_overdue": 2, "merged_in": 2}
    assert [w.input_id for w in table["old"].barrier.held] == ["m2>old"]


def test_a_ledger_keeps_the_partitions_used_most_recently_and_long_ids_as_digests() -> None:
    entry = LedgerEntry(Ledger())
    for n in range(MAX_LEDGER_PARTITIONS + 4):
        assert entry.admit(f"t/{n}", 5, f"id-{n}")
    assert entry.admit("t/5", 6, "again")  # used again: kept over older ones
    assert entry.admit("t/99", 0, "new")
    offsets = entry.freeze().offsets
    assert len(offsets) == MAX_LEDGER_PARTITIONS
    assert "t/5" in offsets and "t/99" in offsets and "t/0" not in offsets
    assert not entry.admit("t/5", 6, "again")  # a redelivery
    long = "x" * (MAX_ID_CHARS * 100)
    assert entry.admit("t/5", 7, long)
    assert not entry.admit("t/5", 8, long)  # republished: caught by its digest
    assert entry.freeze().recent_ids[-1] == kept_id(long) and len(kept_id(long)) < MAX_ID_CHARS
