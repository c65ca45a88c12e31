"""The tagging batch step: ledger dedupe, merges handed over, profile.tags.v1 changes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from pydantic import TypeAdapter

from services.tagging.batch import (
    BatchOutcome,
    Delivery,
    Handover,
    ProfileRecord,
    Rules,
    rederive,
    tag_batch,
)
from services.tagging.inputs import TaggingEvent
from services.tagging.rules import Layer, RuleSet, TagRule
from services.tagging.thresholds import TaggingThresholds
from shared.identity import IdentityMerged
from tests.unit.test_tagging_domain import scored

RULES = Rules(TaggingThresholds(), RuleSet(version=0))
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
EVENTS = "touchpoint.events.v1/0"
SCORES = "intent.scores.v1/0"
MERGES = "identity.merges.v1/0"
HANDOVERS = "pd-tagging-handovers/0"


def touch(
    customer_id: str, kind: str = "content.share", event_id: str | None = None, **properties: object
) -> TaggingEvent:
    at = NOW - timedelta(minutes=1)
    return TaggingEvent(
        event_id=event_id or str(uuid.uuid4()),
        customer_id=customer_id,
        type=kind,
        source="wecom",
        occurred_at=at,
        received_at=at,
        properties={"content_id": "c", **properties},
    )


def merge(merged: str, survivor: str) -> IdentityMerged:
    return IdentityMerged(
        merge_id=str(uuid.uuid4()),
        merged_customer_id=merged,
        survivor_customer_id=survivor,
        identities={"phone": ["h"]},
        merged_at=NOW,
    )


class Table(dict[str, ProfileRecord]):
    def run(self, deliveries: list[Delivery], rules: Rules = RULES) -> BatchOutcome:
        outcome = tag_batch(deliveries, self.get, rules, NOW)
        self.update(outcome.records)
        return outcome


def test_a_new_customer_gets_a_first_change_and_redelivery_changes_nothing() -> None:
    table = Table()
    batch = [Delivery(EVENTS, offset, touch("c1")) for offset in range(2)]
    first = table.run(batch)
    (change,) = first.changes
    assert (change.previous_layer, change.layer, change.tags_added) == (None, "prospect", ["ripple"])
    assert change.event_id == batch[-1].payload.event_id
    replay = table.run(batch)
    assert replay.counts == {"duplicate": 2} and not replay.records and not replay.changes
    assert table["c1"].profile.shares == 2


def test_a_republished_event_counts_once() -> None:
    table = Table()
    same = touch("c1")
    outcome = table.run([Delivery(EVENTS, 0, same), Delivery(EVENTS, 1, same)])
    assert outcome.counts == {"processed": 1, "duplicate": 1}
    assert table["c1"].profile.shares == 1


def test_a_score_is_not_taken_for_the_event_that_moved_it() -> None:
    table = Table()
    event = touch("c1", "test_drive.booked", vehicle_model="id4")
    score = scored(90.0, NOW).model_copy(update={"customer_id": "c1", "event_id": event.event_id})
    outcome = table.run([Delivery(EVENTS, 0, event), Delivery(SCORES, 0, score)])
    assert outcome.counts == {"processed": 2}
    assert table["c1"].profile.intent_pct == 90.0


def test_only_visible_changes_are_published() -> None:
    table = Table()
    table.run([Delivery(EVENTS, 0, touch("c1", "ad.click"))])
    quiet = table.run([Delivery(EVENTS, 1, touch("c1", "ad.click"))])
    assert quiet.records and not quiet.changes
    layer = table.run([Delivery(EVENTS, 2, touch("c1", "store.visit", dealer_id="d1"))])
    (change,) = layer.changes
    assert (change.previous_layer, change.layer, change.tags_added, change.tags_removed) == (
        "prospect",
        "intent",
        [],
        [],
    )


def test_a_merged_profile_is_handed_to_the_survivor_and_late_inputs_follow() -> None:
    table = Table()
    table.run([Delivery(EVENTS, 0, touch("old")), Delivery(EVENTS, 1, touch("new"))])
    merged = table.run([Delivery(MERGES, 0, merge("new", "old"))])
    (handover,) = merged.handovers
    assert handover.customer_id == "old" and handover.merged_profile is not None
    assert table["new"].merged_into == "old" and not merged.changes
    late = table.run([Delivery(EVENTS, 2, touch("new", "order.placed", vehicle_model="id4"))])
    (late_handover,) = late.handovers
    assert late_handover.event is not None and late_handover.event.customer_id == "old"

    # On the wire and back, as the handovers topic carries them.
    wire = [Handover.model_validate_json(h.model_dump_json()) for h in (handover, late_handover)]
    assert wire == [handover, late_handover]
    received = table.run([Delivery(HANDOVERS, i, h) for i, h in enumerate(wire)])
    survivor = table["old"].profile
    assert (survivor.shares, survivor.layer) == (2, Layer.owner)
    assert "ripple" in survivor.tags
    assert received.changes[0].tags_added == ["ripple"]
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
    table.run([Delivery(EVENTS, 0, touch("c1", topics=["tech"], value_point="rational"))], rules)
    adapter = TypeAdapter(ProfileRecord)
    assert adapter.validate_json(adapter.dump_json(table["c1"])) == table["c1"]


def test_new_rules_are_applied_to_existing_profiles() -> None:
    table = Table()
    shares = [Delivery(EVENTS, offset, touch("c1")) for offset in range(2)]
    table.run([*shares, Delivery(EVENTS, 2, touch("c2", "ad.click"))])
    rules = Rules(
        RULES.thresholds, RuleSet.of(3, [TagRule(tag="fresh", layers=["prospect"], tags_all=["ripple"])])
    )
    outcome = rederive(table.values(), rules, "rules-3", NOW)
    assert list(outcome.records) == ["c1"]
    (change,) = outcome.changes
    assert (change.event_id, change.tags_added) == ("rules-3:c1", ["fresh"])
