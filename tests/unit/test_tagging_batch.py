"""The tagging batch step: ledger dedupe, merges handed over, profile.tags.v1 changes, and every
input passed on along the chain with the profile it led to."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from pydantic import TypeAdapter

from services.tagging.batch import (
    BatchOutcome,
    Delivery,
    ProfileRecord,
    Rules,
    ScoredInput,
    TaggingHandover,
    rederive,
    tag_batch,
)
from services.tagging.inputs import TaggingEvent
from services.tagging.rules import Layer, RuleSet, TagRule
from services.tagging.thresholds import TaggingThresholds
from shared.chain import ChainInput, ScoreSnapshot
from shared.identity import IdentityMerged
from tests.factories import read_event
from tests.unit.test_tagging_domain import scored

RULES = Rules(TaggingThresholds(), RuleSet(version=0))
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
SCORED = "scored.inputs.v1/0"
HANDOVERS = "pd-tagging-handovers/0"


def touch(
    customer_id: str, kind: str = "content.share", event_id: str | None = None, **properties: object
) -> TaggingEvent:
    properties = {"content_id": "c", **properties}
    return read_event(TaggingEvent, kind, NOW - timedelta(minutes=1), customer_id, event_id, **properties)


def merge(merged: str, survivor: str) -> IdentityMerged:
    return IdentityMerged(
        merge_id=str(uuid.uuid4()),
        merged_customer_id=merged,
        survivor_customer_id=survivor,
        identities={"phone": ["h"]},
        merged_at=NOW,
    )


def chained(
    event: TaggingEvent | None = None,
    score: ScoreSnapshot | None = None,
    merged: IdentityMerged | None = None,
) -> ScoredInput:
    """A record of scored.inputs.v1, as scoring passes an event or a merge on."""
    if merged is not None:
        return ScoredInput(input_id=merged.merge_id, customer_id=merged.merged_customer_id, merge=merged)
    assert event is not None
    return ScoredInput(
        input_id=event.event_id,
        customer_id=event.customer_id,
        received_at=event.received_at,
        event=event,
        score=score,
    )


def passed_on(outcome: BatchOutcome) -> list[ChainInput]:
    return [ChainInput.model_validate_json(value) for _, value in outcome.chain]


class Table(dict[str, ProfileRecord]):
    def run(self, deliveries: list[Delivery], rules: Rules = RULES) -> BatchOutcome:
        outcome = tag_batch(deliveries, self.get, rules, NOW)
        self.update(outcome.records)
        return outcome


def test_a_new_customer_gets_a_first_change_and_redelivery_changes_nothing() -> None:
    table = Table()
    batch = [Delivery(SCORED, offset, chained(touch("c1"))) for offset in range(2)]
    first = table.run(batch)
    (change,) = first.changes
    assert (change.previous_layer, change.layer, change.tags_added) == (None, "prospect", ["ripple"])
    assert change.event_id == batch[-1].payload.input_id
    # Each input goes on with the profile right after it: ripple comes with the second share.
    assert [(c.input_id, c.profile.tags) for c in passed_on(first)] == [
        (batch[0].payload.input_id, []),
        (batch[1].payload.input_id, ["ripple"]),
    ]
    assert all(c.event is not None and c.event.type == "content.share" for c in passed_on(first))
    replay = table.run(batch)
    assert replay.counts == {"duplicate": 2} and not replay.records and not replay.changes
    assert not replay.chain
    assert table["c1"].profile.shares == 2


def test_a_republished_event_counts_once() -> None:
    table = Table()
    same = chained(touch("c1"))
    outcome = table.run([Delivery(SCORED, 0, same), Delivery(SCORED, 1, same)])
    assert outcome.counts == {"processed": 1, "duplicate": 1}
    assert table["c1"].profile.shares == 1


def test_the_score_an_event_led_to_comes_with_it_and_is_applied_after_it() -> None:
    table = Table()
    high, _ = scored(80.0, NOW)
    outcome = table.run([Delivery(SCORED, 0, chained(touch("c1", "ad.click"), high))])
    assert outcome.counts == {"processed": 1}
    assert (table["c1"].profile.intent_pct, table["c1"].profile.layer) == (80.0, Layer.intent)
    # The score that comes with the defeat is no re-engagement; a later input's score is.
    defeat = touch("c1", "lead.defeated", reason="budget")
    lost = table.run([Delivery(SCORED, 1, chained(defeat, high))])
    assert [c.profile.layer for c in passed_on(lost)] == ["defeated"]
    later = touch("c1", "ad.click").model_copy(update={"received_at": NOW})
    back = table.run([Delivery(SCORED, 2, chained(later, high))])
    assert [(c.profile.layer, "recalled" in c.profile.tags) for c in passed_on(back)] == [("intent", True)]


def test_only_visible_changes_are_published() -> None:
    table = Table()
    table.run([Delivery(SCORED, 0, chained(touch("c1", "ad.click")))])
    quiet = table.run([Delivery(SCORED, 1, chained(touch("c1", "ad.click")))])
    assert quiet.records and not quiet.changes
    assert len(quiet.chain) == 1  # the chain has every input, changed or not
    layer = table.run([Delivery(SCORED, 2, chained(touch("c1", "store.visit", dealer_id="d1")))])
    (change,) = layer.changes
    assert (change.previous_layer, change.layer, change.tags_added, change.tags_removed) == (
        "prospect",
        "intent",
        [],
        [],
    )


def test_a_merged_profile_is_handed_to_the_survivor_and_late_inputs_follow() -> None:
    table = Table()
    table.run([Delivery(SCORED, 0, chained(touch("old"))), Delivery(SCORED, 1, chained(touch("new")))])
    merged = table.run([Delivery(SCORED, 2, chained(merged=merge("new", "old")))])
    (handover,) = merged.handovers
    assert handover.customer_id == "old" and handover.state is not None
    assert table["new"].merged_into == "old" and not merged.changes
    # The merge goes on along the chain, in its place among the merged customer's inputs.
    assert [(c.customer_id, c.merge is not None) for c in passed_on(merged)] == [("new", True)]
    late = table.run([Delivery(SCORED, 3, chained(touch("new", "order.placed", vehicle_model="id4")))])
    (late_handover,) = late.handovers
    assert late_handover.input_json is not None
    assert ScoredInput.model_validate_json(late_handover.input_json).customer_id == "old"
    assert not late.chain

    # On the wire and back, as the handovers topic carries them.
    wire = [TaggingHandover.model_validate_json(h.model_dump_json()) for h in (handover, late_handover)]
    assert wire == [handover, late_handover]
    received = table.run([Delivery(HANDOVERS, i, h) for i, h in enumerate(wire)])
    assert table["old"].profile.shares == 1  # the merged profile waits for its place
    (late_input,) = passed_on(received)
    assert (late_input.customer_id, late_input.event.type, late_input.profile.layer) == (
        "old",
        "order.placed",
        "owner",
    )
    # Scoring's input where the merged customer joins: the merged profile comes in right there.
    merge_id = handover.handover_id
    joins = ScoredInput(input_id=f"merged:{merge_id}", customer_id="old", joins=merge_id)
    joined = table.run([Delivery(SCORED, 4, joins)])
    survivor = table["old"].profile
    assert (survivor.shares, survivor.layer) == (2, Layer.owner)
    assert "ripple" in survivor.tags
    assert joined.changes[0].tags_added == ["ripple"]
    (merged_in,) = passed_on(joined)
    assert (merged_in.customer_id, merged_in.input_id, merged_in.joins) == (
        "old",
        f"merged:{merge_id}",
        merge_id,
    )
    assert "ripple" in merged_in.profile.tags
    again = table.run([Delivery(HANDOVERS, 5, wire[0])])  # republished: caught by its id
    assert again.counts == {"duplicate": 1}


def test_records_survive_their_table_encoding() -> None:
    table = Table()
    rules = Rules(
        RULES.thresholds,
        RuleSet.of(
            1, [TagRule(tag="sharer", counts=[{"types": ["content.share"], "at_least": 1, "within_days": 3}])]
        ),
    )
    table.run([Delivery(SCORED, 0, chained(touch("c1", topics=["tech"], value_point="rational")))], rules)
    adapter = TypeAdapter(ProfileRecord)
    assert adapter.validate_json(adapter.dump_json(table["c1"])) == table["c1"]


def test_new_rules_are_applied_to_existing_profiles() -> None:
    table = Table()
    shares = [Delivery(SCORED, offset, chained(touch("c1"))) for offset in range(2)]
    table.run([*shares, Delivery(SCORED, 2, chained(touch("c2", "ad.click")))])
    rules = Rules(
        RULES.thresholds, RuleSet.of(3, [TagRule(tag="fresh", layers=["prospect"], tags_all=["ripple"])])
    )
    outcome = rederive(table.values(), rules, "rules-3", NOW)
    assert list(outcome.records) == ["c1"]
    (change,) = outcome.changes
    assert (change.event_id, change.tags_added) == ("rules-3:c1", ["fresh"])
    # Campaign hears of it in the customer's order, as an input of its own.
    ((customer, _),) = outcome.chain
    (rules_input,) = passed_on(outcome)
    assert (customer, rules_input.input_id, rules_input.event) == ("c1", "rules-3:c1", None)
    assert "fresh" in rules_input.profile.tags
