"""One customer's inputs, folded in order: the loop every stream worker shares.

Scoring, tagging and campaign each keep one row per customer (their state, a ledger, and where
the customer was merged to) and take their inputs in batches. What they do with an input is
their own domain; everything around it is the same and lives here, once:

- **Admit.** The ledger (`shared/ledger.py`) turns redeliveries and republications into no-ops.
- **Merged away.** An input that merges the customer into a survivor hands the state over (a
  `Handover` on the worker's own handovers topic, keyed by the survivor) and leaves an empty
  state with `merged_into` set; whatever still names the merged customer afterwards is handed
  on to the survivor as it was read (`input_json`), and applied there as the survivor's own.
- **Merged in, at one place.** A merge has its place among the survivor's own inputs: the input
  that `joins` it (at scoring `identity.joined`, which ingest puts right before the event that
  caused the merge; downstream the `merged:<merge id>` input scoring makes there). The merged
  customer's state arrives on another topic, earlier or later. The `Barrier` in the row keeps
  what came early: a handover is held until the input that joins it; an input that joins a merge
  whose handover has not come is parked, with everything after it, until it comes. So a
  survivor's inputs are applied in one order however the topics were read — and a replay after
  a crash makes the same outputs as the first run (docs/causal-order.md, "Merges").
- **Erased.** A tombstone (`CustomerErased`, shared/erasure.py) drops the customer's row: it is
  listed in the outcome's `erased` for the worker to remove everywhere. Every other input of a
  customer in `erased` (the erasure records the worker knows) is dropped, before or after it.
- **Apply** everything else, in the order read.

A service supplies a `CustomerFold`: a new row and which of its fields holds the state, what an
input's id is, whether it is a merge or joins one, the types its inputs decode to (to decode a
parked input again), and how an input and a merged-in state change the state (and what they
put in the batch's outcome); a late input handed on is applied as an input.
Pure: no Kafka, Faust, Redis or HTTP.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Container, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, GetCoreSchemaHandler
from pydantic_core import CoreSchema, core_schema

from shared.dataclass_replace import replace
from shared.erasure import CustomerErased
from shared.identity import IdentityMerged
from shared.ledger import Ledger, LedgerEntry
from shared.outcome import BatchOutcomeBase

S = TypeVar("S")  # a customer's state in one service
P = TypeVar("P")  # what one input decodes to
R = TypeVar("R", bound="Row")  # a table row
Out = TypeVar("Out", bound="FoldOutcome")


# Bounds on what a barrier keeps per customer (it is stored in the row, on the changelog). A
# handover normally comes within a batch or two; past these the fold stops waiting (counted as
# "merge_overdue") rather than grow a row without bound. Counts, and the characters of what
# waits (held and parked inputs are kept as they were read, and an input may be large): a row
# must stay far below the largest record the broker takes (shared/stream_worker.py).
MAX_PARKED = 100
MAX_HELD = 8
MAX_WAITING_CHARS = 256 * 1024
JOINED_KEPT = 16


@dataclass(frozen=True, slots=True)
class Waiting:
    """An input read but not applied yet, as it was read: enough to decode it again."""

    partition: str
    offset: int
    input_id: str
    kind: str  # the payload's type name (CustomerFold.payload_types)
    raw: str


@dataclass(frozen=True, slots=True)
class Barrier:
    """Where a customer's merges stand: what waits, and which merges are in (the latest few)."""

    held: tuple[Waiting, ...] = ()  # handovers whose joining input has not come yet
    awaiting: str | None = None  # the merge the first parked input joins
    parked: tuple[Waiting, ...] = ()  # that input and every input after it, in order
    joined: tuple[str, ...] = ()  # merge ids merged in: a repeated handover or join is a no-op
    overdue: tuple[str, ...] = ()  # merges no longer waited for: merged in when they come

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        # Read back from a changelog, an empty barrier is NO_BARRIER again, not one per row.
        return core_schema.no_info_after_validator_function(
            lambda barrier: NO_BARRIER if barrier == NO_BARRIER else barrier, handler(source)
        )


# The barrier of every customer no merge is near: one object, not one per row (rows default to
# it, and the fold hands it back whenever a barrier ends up empty).
NO_BARRIER = Barrier()


class Row(Protocol):
    ledger: Ledger
    merged_into: str | None
    barrier: Barrier


class Handover(BaseModel, Generic[S]):
    """Something for the survivor of a merge: the merged customer's state, or an input that
    named the merged customer after the merge (as it was read, re-addressed to the survivor)."""

    model_config = ConfigDict(frozen=True)

    handover_id: str  # the merge id, or the late input's id: what the receiver's ledger dedupes by
    customer_id: str  # the receiver
    from_customer_id: str
    state: S | None = None
    input_json: str | None = None
    schema_version: int = 1


class Tick(BaseModel):
    """The clock, for one customer: releases what is due (shared/ticks.py sends them)."""

    model_config = ConfigDict(frozen=True)

    tick_id: str
    customer_id: str
    schema_version: int = 1


@dataclass(frozen=True, slots=True)
class Delivery(Generic[P]):
    """One decoded input, where it was read ("topic/partition", offset) and the bytes read."""

    partition: str
    offset: int
    payload: P
    raw: bytes = b""
    at: float = 0.0  # when its record was published (epoch seconds; 0: unknown), for the ledger

    @property
    def customer_id(self) -> str:
        payload: Any = self.payload
        # A merge is keyed by the customer merged away: theirs is the state to hand over.
        if isinstance(payload, IdentityMerged):
            return payload.merged_customer_id
        return payload.customer_id


@dataclass
class FoldOutcome(BatchOutcomeBase):
    """What every service's batch outcome has: changed rows and handovers (plus counts)."""

    records: dict[str, Any] = field(default_factory=dict)
    handovers: list[Handover[Any]] = field(default_factory=list)
    erased: list[str] = field(default_factory=list)  # customers whose tombstone came: rows dropped


class CustomerFold(ABC, Generic[R, S, P, Out]):
    """A service's domain, as the fold needs it. Its rows are frozen dataclasses with the state
    in the field `state_field`, a `ledger` and `merged_into` (and whatever else they keep)."""

    state_field: ClassVar[str]
    # Every type an input may decode to, so that a parked input can be decoded again.
    payload_types: ClassVar[tuple[type[BaseModel], ...]]

    @abstractmethod
    def new_row(self, customer_id: str) -> R: ...

    def state_of(self, row: R) -> S:
        return getattr(row, self.state_field)  # type: ignore[no-any-return]

    def row_of(self, before: R, state: S, ledger: Ledger, merged_into: str | None, barrier: Barrier) -> R:
        changes = {self.state_field: state, "ledger": ledger, "merged_into": merged_into, "barrier": barrier}
        return replace(before, **changes)

    @abstractmethod
    def input_id(self, payload: P) -> str: ...

    @abstractmethod
    def apply(self, state: S, delivery: Delivery[P], outcome: Out) -> S:
        """An input of the customer's own (or a late one handed on: then `delivery.payload`
        names the receiver and `delivery.raw` is what was handed on)."""

    @abstractmethod
    def merge_in(self, state: S, handover: Handover[S], outcome: Out) -> S:
        """A merged customer's state arrives at the survivor."""

    @abstractmethod
    def decode(self, raw: bytes) -> P:
        """A late input handed on, as the service reads its inputs."""

    def joins(self, payload: P) -> str | None:
        """The merge whose handed-over state comes in at this input, if any."""
        return None

    def merge_of(self, payload: P) -> IdentityMerged | None:
        """The merge, if this input merges the customer away."""
        return payload if isinstance(payload, IdentityMerged) else None

    def merged_away(self, state: S, delivery: Delivery[P], merge: IdentityMerged, outcome: Out) -> None:
        """After the state was handed over (e.g. pass the merge on along the chain)."""

    def hands_on(self, payload: P) -> bool:
        """Whether an input that comes after the merge goes on to the survivor: all but ticks
        (the survivor keeps its own clock)."""
        return not isinstance(payload, Tick)

    def finish(
        self, customer_id: str, before: R | None, after: R, inputs: list[Delivery[P]], outcome: Out
    ) -> R:
        """Once per customer and batch, after its inputs (e.g. publish a change); the row to keep."""
        return after


def fold_batch(
    deliveries: Iterable[Delivery[P]],
    row_of: Callable[[str], R | None],
    domain: CustomerFold[R, S, P, Out],
    outcome: Out,
    erased: Container[str] = frozenset(),
) -> Out:
    """Apply a batch: each customer's inputs in the order they were read; nothing of customers
    `erased` (their tombstones drop their rows)."""
    by_customer: dict[str, list[Delivery[P]]] = {}
    for delivery in deliveries:
        by_customer.setdefault(delivery.customer_id, []).append(delivery)
    for customer_id, inputs in by_customer.items():
        tombstones = sum(isinstance(d.payload, CustomerErased) for d in inputs)
        if tombstones or customer_id in erased:
            if tombstones:
                outcome.erased.append(customer_id)
                outcome.count("erased", tombstones)
            if len(inputs) > tombstones:  # late: a replay, a tick, an event on its way
                outcome.count("dropped_erased", len(inputs) - tombstones)
            continue
        before = row_of(customer_id)
        row = before if before is not None else domain.new_row(customer_id)
        after = _fold_customer(customer_id, row, inputs, domain, outcome)
        if after is not row:
            outcome.records[customer_id] = domain.finish(customer_id, before, after, inputs, outcome)
    return outcome


def _fold_customer(
    customer_id: str, row: R, inputs: list[Delivery[P]], domain: CustomerFold[R, S, P, Out], outcome: Out
) -> R:
    ledger = LedgerEntry(row.ledger)
    walk = _Walk(customer_id, row, domain, outcome)
    admitted = False
    for delivery in inputs:
        input_id = _input_id(delivery.payload, domain)
        if not ledger.admit(delivery.partition, delivery.offset, input_id, delivery.at):
            outcome.count("duplicate")
            continue
        admitted = True
        walk.step(delivery, input_id)
    if not admitted:
        return row
    return domain.row_of(row, walk.state, ledger.freeze(), walk.merged_into, walk.barrier())


def _input_id(payload: Any, domain: CustomerFold[Any, Any, Any, Any]) -> str:
    return payload.handover_id if isinstance(payload, Handover) else domain.input_id(payload)


class _Walk(Generic[R, S, P, Out]):
    """One customer's row while the fold goes through their inputs."""

    def __init__(self, customer_id: str, row: R, domain: CustomerFold[R, S, P, Out], outcome: Out) -> None:
        self.customer_id = customer_id
        self.domain = domain
        self.outcome = outcome
        self.state: S = domain.state_of(row)
        self.merged_into = row.merged_into
        self.unchanged: Barrier | None = row.barrier  # None once anything moved through it
        barrier = row.barrier
        self.held = list(barrier.held)
        self.awaiting = barrier.awaiting
        self.parked = list(barrier.parked)
        self.joined = list(barrier.joined)
        self.overdue = list(barrier.overdue)

    def barrier(self) -> Barrier:
        if self.unchanged is not None:  # the common case: no merge anywhere near
            return self.unchanged
        if not (self.held or self.awaiting or self.parked or self.joined or self.overdue):
            return NO_BARRIER
        return Barrier(
            tuple(self.held),
            self.awaiting,
            tuple(self.parked),
            tuple(self.joined[-JOINED_KEPT:]),
            tuple(self.overdue[-JOINED_KEPT:]),
        )

    def step(self, delivery: Delivery[P], input_id: str) -> None:
        payload = delivery.payload
        if self.merged_into is not None:
            handed = _hand_on(delivery, input_id, self.customer_id, self.merged_into, self.domain)
            if handed is not None:
                self.outcome.handovers.append(handed)
            self.outcome.count("handed_over")
        elif isinstance(payload, Handover):
            if payload.state is not None:
                self._arrived(delivery, payload)
            if payload.input_json is not None:
                raw = payload.input_json.encode()
                late = Delivery(
                    delivery.partition, delivery.offset, self.domain.decode(raw), raw, delivery.at
                )
                self._own(late, self.domain.input_id(late.payload))
        else:
            self._own(delivery, input_id)

    def _arrived(self, delivery: Delivery[P], handover: Handover[Any]) -> None:
        """A merged customer's state: in now if its place was reached, else held until it is."""
        merge_id = handover.handover_id
        self.unchanged = None
        if merge_id in self.joined:
            self.outcome.count("duplicate")
        elif merge_id == self.awaiting:
            self._merge_in(handover)
            self._release()
        elif merge_id in self.overdue:
            self.overdue.remove(merge_id)
            self._merge_in(handover)
        else:
            self.held.append(_waiting(delivery, merge_id))
            self.outcome.count("held")
            # Never joined (or not yet): past the bounds, stop waiting for the oldest.
            while len(self.held) > MAX_HELD or (self.held and self._waiting_chars() > MAX_WAITING_CHARS):
                self.outcome.count("merge_overdue")
                self._merge_in(self._decode(self.held.pop(0)).payload)

    def _own(self, delivery: Delivery[P], input_id: str) -> None:
        """One of the customer's own inputs (or a late one handed on), in its place."""
        if self.parked:
            self._park(delivery, input_id)
            return
        merge_id = self.domain.joins(delivery.payload)
        if merge_id is not None and merge_id not in self.joined:
            held = next((w for w in self.held if w.input_id == merge_id), None)
            if held is not None:
                self.held.remove(held)
                self._merge_in(self._decode(held).payload)
            elif merge_id in self.overdue:
                pass  # merged in whenever it comes
            else:
                self.awaiting = merge_id
                self._park(delivery, input_id)
                return
        if (merge := self.domain.merge_of(delivery.payload)) is not None:
            self._merge_away(delivery, merge)
        else:
            self.state = self.domain.apply(self.state, delivery, self.outcome)
            self.outcome.count("processed")

    def _park(self, delivery: Delivery[P], input_id: str) -> None:
        self.unchanged = None
        waiting = _waiting(delivery, input_id)
        if (
            len(self.parked) >= MAX_PARKED or self._waiting_chars() + len(waiting.raw) > MAX_WAITING_CHARS
        ):  # the handover is overdue: go on without it
            assert self.awaiting is not None
            self.overdue.append(self.awaiting)
            self.outcome.count("merge_overdue")
            self._release()
            self.step(delivery, input_id)
            return
        self.parked.append(waiting)
        self.outcome.count("parked")

    def _waiting_chars(self) -> int:
        """The characters of what waits at the barrier (bounded by MAX_WAITING_CHARS)."""
        return sum(len(w.raw) for w in self.held) + sum(len(w.raw) for w in self.parked)

    def _release(self) -> None:
        """The awaited merge is in (or overdue): the parked inputs go, in order."""
        self.awaiting = None
        parked, self.parked = self.parked, []
        for waiting in parked:
            self.step(self._decode(waiting), waiting.input_id)

    def _merge_in(self, handover: Any) -> None:
        self.unchanged = None
        self.state = self.domain.merge_in(self.state, handover, self.outcome)
        self.joined.append(handover.handover_id)
        self.outcome.count("merged_in")

    def _merge_away(self, delivery: Delivery[P], merge: IdentityMerged) -> None:
        survivor = merge.survivor_customer_id
        self.merged_into = survivor
        self.outcome.handovers.append(
            Handover(
                handover_id=merge.merge_id,
                customer_id=survivor,
                from_customer_id=self.customer_id,
                state=self.state,
            )
        )
        # Whatever was held for this customer goes on with them (held only if never joined).
        for held in self.held:
            handover: Any = self._decode(held).payload
            self.outcome.handovers.append(handover.model_copy(update={"customer_id": survivor}))
        self.held = []
        self.domain.merged_away(self.state, delivery, merge, self.outcome)
        self.state = self.domain.state_of(self.domain.new_row(self.customer_id))
        self.outcome.count("merged")

    def _decode(self, waiting: Waiting) -> Delivery[P]:
        kinds = {_kind(kind): kind for kind in self.domain.payload_types}
        raw = waiting.raw.encode()
        payload: Any = kinds[waiting.kind].model_validate_json(raw)
        return Delivery(waiting.partition, waiting.offset, payload, raw)


def _waiting(delivery: Delivery[Any], input_id: str) -> Waiting:
    payload: Any = delivery.payload
    raw = delivery.raw.decode() if delivery.raw else payload.model_dump_json()
    return Waiting(delivery.partition, delivery.offset, input_id, _kind(type(payload)), raw)


def _kind(payload_type: type) -> str:
    # Handover[S] for one service, however it was built (parametrised when read from a topic).
    return "Handover" if issubclass(payload_type, Handover) else payload_type.__name__


def _hand_on(
    delivery: Delivery[P],
    input_id: str,
    customer_id: str,
    survivor: str,
    domain: CustomerFold[Any, Any, P, Any],
) -> Handover[Any] | None:
    """An input for a customer already merged away goes on to the survivor, as it was read."""
    payload = delivery.payload
    if isinstance(payload, Handover):  # the survivor was merged away too: onwards
        return payload.model_copy(update={"customer_id": survivor})
    handover: Handover[Any] = Handover(
        handover_id=input_id, customer_id=survivor, from_customer_id=customer_id
    )
    if domain.merge_of(payload) is not None:  # merged twice: nothing left to hand over
        return handover
    if not domain.hands_on(payload):
        return None
    return handover.model_copy(update={"input_json": readdressed(delivery, survivor)})


def readdressed(delivery: Delivery[Any], survivor: str) -> str:
    """The input as it was read, naming the survivor as its customer."""
    payload: Any = delivery.payload
    whole = orjson.loads(delivery.raw) if delivery.raw else payload.model_dump(mode="json", exclude_none=True)
    return orjson.dumps({**whole, "customer_id": survivor}).decode()
