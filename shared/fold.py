"""One customer's inputs, folded in order: the loop every stream worker shares.

Scoring, tagging and campaign each keep one row per customer (their state, a ledger, and where
the customer was merged to) and take their inputs in batches. What they do with an input is
their own domain; everything around it is the same and lives here, once:

- **Admit.** The ledger (`shared/ledger.py`) turns redeliveries and republications into no-ops.
- **Merged away.** An input that merges the customer into a survivor hands the state over (a
  `Handover` on the worker's own handovers topic, keyed by the survivor) and leaves an empty
  state with `merged_into` set; whatever still names the merged customer afterwards is handed
  on to the survivor as it was read (`input_json`), and applied there as the survivor's own.
- **Merged in.** A handover with a state is folded into the receiver's state.
- **Apply** everything else, in the order read.

A service supplies a `CustomerFold`: a new row and which of its fields holds the state, what an
input's id is, whether it is a merge, and how an input and a merged-in state change the state
(and what they put in the batch's outcome); a late input handed on is applied as an input.
Pure: no Kafka, Faust, Redis or HTTP.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict

from shared.identity import IdentityMerged
from shared.ledger import Ledger, LedgerEntry
from shared.outcome import BatchOutcomeBase

S = TypeVar("S")  # a customer's state in one service
P = TypeVar("P")  # what one input decodes to
R = TypeVar("R", bound="Row")  # a table row
Out = TypeVar("Out", bound="FoldOutcome")


class Row(Protocol):
    ledger: Ledger
    merged_into: str | None


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


class CustomerFold(ABC, Generic[R, S, P, Out]):
    """A service's domain, as the fold needs it. Its rows are frozen dataclasses with the state
    in the field `state_field`, a `ledger` and `merged_into` (and whatever else they keep)."""

    state_field: ClassVar[str]

    @abstractmethod
    def new_row(self, customer_id: str) -> R: ...

    def state_of(self, row: R) -> S:
        return getattr(row, self.state_field)  # type: ignore[no-any-return]

    def row_of(self, before: R, state: S, ledger: Ledger, merged_into: str | None) -> R:
        changes = {self.state_field: state, "ledger": ledger, "merged_into": merged_into}
        return replace(before, **changes)  # type: ignore[type-var]  # the rows are dataclasses

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
) -> Out:
    """Apply a batch: each customer's inputs in the order they were read."""
    by_customer: dict[str, list[Delivery[P]]] = {}
    for delivery in deliveries:
        by_customer.setdefault(delivery.customer_id, []).append(delivery)
    for customer_id, inputs in by_customer.items():
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
    state = domain.state_of(row)
    merged_into = row.merged_into
    admitted = False
    for delivery in inputs:
        payload = delivery.payload
        input_id = payload.handover_id if isinstance(payload, Handover) else domain.input_id(payload)
        if not ledger.admit(delivery.partition, delivery.offset, input_id):
            outcome.count("duplicate")
            continue
        admitted = True
        if merged_into is not None:
            handed = _hand_on(delivery, input_id, customer_id, merged_into, domain)
            if handed is not None:
                outcome.handovers.append(handed)
            outcome.count("handed_over")
        elif isinstance(payload, Handover):
            if payload.state is not None:
                state = domain.merge_in(state, payload, outcome)
            if payload.input_json is not None:
                raw = payload.input_json.encode()
                late = Delivery(delivery.partition, delivery.offset, domain.decode(raw), raw)
                state = domain.apply(state, late, outcome)
            outcome.count("processed")
        elif (merge := domain.merge_of(payload)) is not None:
            merged_into = merge.survivor_customer_id
            outcome.handovers.append(
                Handover(
                    handover_id=merge.merge_id,
                    customer_id=merged_into,
                    from_customer_id=customer_id,
                    state=state,
                )
            )
            domain.merged_away(state, delivery, merge, outcome)
            state = domain.state_of(domain.new_row(customer_id))
            outcome.count("merged")
        else:
            state = domain.apply(state, delivery, outcome)
            outcome.count("processed")
    if not admitted:
        return row
    return domain.row_of(row, state, ledger.freeze(), merged_into)


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
