"""The enrichment chain: every input of a customer, in order, with what each worker made of it.

Why a chain (docs/causal-order.md has the whole argument): a campaign decision about a customer
must see the score, profile and consent that include the input it answers and everything
ingest accepted for that customer before it. Reading scores and profiles from their own topics
cannot promise that: a worker reads several topics in whatever order fetches return them. So
the workers pass each input on, on one topic keyed by the customer, with their result attached:

    touchpoint.events.v1 ──▶ scoring ─▶ scored.inputs.v1 (input + score)
                                            ─▶ tagging ─▶ tagged.inputs.v1 (input + score + profile)
                                                              ─▶ campaign

One partition per customer all the way: a worker reading one topic sees a customer's inputs in
the order the previous worker produced them, which is the order it read them. The public change
feeds (`intent.scores.v1`, `profile.tags.v1`) stay as they were, for whoever else listens.

Records are built with orjson: the event is carried as the bytes it arrived as (a `Fragment`),
and tagging adds the profile in front of scoring's record without decoding the rest again.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from shared.events import PublishedEvent
from shared.identity import IdentityMerged

SCHEMA_VERSION = 1


class ScoreSnapshot(BaseModel):
    """The customer's score right after the input (as scoring's read model shows it)."""

    model_config = ConfigDict(frozen=True)

    intent_score: float
    intent_pct: float
    band: str
    activity: str
    points: int
    growth: int
    level: str
    # The car model the customer is most interested in (per-model interest), if any.
    top_model: str | None = None


class ProfileSnapshot(BaseModel):
    """The customer's profile right after the input."""

    model_config = ConfigDict(frozen=True)

    layer: str
    orientation: str
    stage: str
    tags: list[str]  # sorted
    # The funnel's milestones the customer reached (shared/funnels.py), in their order; records
    # written before it was carried read as none.
    milestones: list[str] = Field(default_factory=list)


class ChainInput(BaseModel):
    """One record on `scored.inputs.v1` / `tagged.inputs.v1`.

    `input_id` is what downstream ledgers dedupe by: the event id, the merge id, or an id a
    worker made for a change of its own (a merged-in state, new tag rules). `event` and `merge`
    say what the input was (neither: a worker's own change); `score` is set by scoring when the
    input moved or carries a score, `profile` by tagging. `joins` names the merge whose merged
    customer comes in at this input: each worker takes in its state of them here (shared/fold.py).
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    type: Literal["chain.input"] = "chain.input"
    input_id: str
    customer_id: str
    received_at: AwareDatetime | None = None  # of the touchpoint event, for end-to-end latency
    event: PublishedEvent | None = None
    merge: IdentityMerged | None = None
    joins: str | None = None
    score: ScoreSnapshot | None = None
    profile: ProfileSnapshot | None = None
    schema_version: Literal[1] = SCHEMA_VERSION


def chain_record(
    input_id: str,
    customer_id: str,
    *,
    received_at: datetime | None = None,
    event_json: bytes | None = None,
    merge: IdentityMerged | None = None,
    joins: str | None = None,
    score: ScoreSnapshot | Mapping[str, Any] | None = None,
    profile: ProfileSnapshot | None = None,
) -> bytes:
    """A chain record's bytes; `event_json` is embedded as it is (already valid JSON). `score`
    may be a `ScoreSnapshot`'s fields as a mapping (scoring's fold builds one per input)."""
    record: dict[str, Any] = {
        "type": "chain.input",
        "input_id": input_id,
        "customer_id": customer_id,
        "received_at": received_at,
        "schema_version": SCHEMA_VERSION,
    }
    if event_json is not None:
        record["event"] = orjson.Fragment(event_json)
    if merge is not None:
        record["merge"] = merge.model_dump(mode="json")
    if joins is not None:
        record["joins"] = joins
    if score is not None:
        record["score"] = score.__dict__ if isinstance(score, ScoreSnapshot) else score
    if profile is not None:
        record["profile"] = profile.__dict__
    return orjson.dumps(record)


def with_profile(raw: bytes, profile: ProfileSnapshot) -> bytes:
    """`raw` (a chain record from scoring) with the profile added, the rest left as it was.

    A record is a JSON object, so the profile goes in front of its first key; a reader taking
    the first of two `profile` keys would be wrong, hence scoring never writes one.
    """
    start = raw.index(b"{") + 1
    return b'{"profile":' + orjson.dumps(profile.__dict__) + b"," + raw[start:]
