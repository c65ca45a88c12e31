"""The batch step: ledger dedupe, merges handed over to the survivor, emissions."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import orjson

from services.scoring.batch import BatchOutcome, CustomerRecord, Delivery, ScoringHandover, score_batch
from services.scoring.inputs import ScoringEvent
from services.scoring.latest_events import latest_entry, newest
from services.scoring.plan import default_plan
from shared.chain import ChainInput
from shared.events import Source
from shared.fold import Tick
from shared.identity import IdentityJoined, IdentityMerged
from shared.ledger import MAX_RECENT_IDS, RECENT_IDS
from shared.record_table import RecordCodec
from shared.scores import IntentScoreChanged

PLAN = default_plan()
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
T0 = NOW.timestamp()  # when the first input's record was published
EVENTS = "touchpoint.events.v1/0"
HANDOVERS = "pd-scoring-handovers/0"
TICKS = "pd-scoring-ticks/0"


def click(customer_id: str, event_id: str | None = None, minutes_ago: int = 1) -> ScoringEvent:
    at = NOW - timedelta(minutes=minutes_ago)
    return ScoringEvent(
        event_id=event_id or str(uuid.uuid4()),
        customer_id=customer_id,
        type="content.click",
        source="wecom",
        occurred_at=at,
        received_at=at,
    )


def merge(merged: str, survivor: str) -> IdentityMerged:
    return IdentityMerged(
        merge_id=str(uuid.uuid4()),
        merged_customer_id=merged,
        survivor_customer_id=survivor,
        identities={"phone": ["h"]},
        merged_at=NOW,
    )


def joined(record: IdentityMerged) -> IdentityJoined:
    return IdentityJoined(
        merge_id=record.merge_id,
        customer_id=record.survivor_customer_id,
        merged_customer_id=record.merged_customer_id,
        joined_at=record.merged_at,
    )


class Table(dict[str, CustomerRecord]):
    """The worker's table, as the batch step sees it."""

    def run(self, deliveries: list[Delivery]) -> BatchOutcome:
        outcome = score_batch(deliveries, self.get, PLAN, NOW)
        self.update(outcome.records)
        return outcome


def test_redelivered_offsets_change_nothing() -> None:
    table = Table()
    batch = [Delivery(EVENTS, offset, click("c1")) for offset in range(3)]
    table.run(batch)
    replay = table.run(batch)
    assert table["c1"].score.intent_score == 12.0
    assert replay.counts == {"duplicate": 3}
    assert replay.records == {} and replay.scores == []


def test_a_republished_event_counts_once() -> None:
    table = Table()
    same = click("c1", event_id="e-1")
    outcome = table.run(
        [Delivery(EVENTS, 0, same), Delivery(EVENTS, 1, same), Delivery(EVENTS, 2, click("c1"))]
    )
    assert outcome.counts == {"processed": 2, "duplicate": 1}
    assert table["c1"].score.intent_score == 8.0


def test_the_ledger_keeps_the_ids_of_a_window_and_no_more_than_its_cap() -> None:
    hour = 3600.0
    table = Table()
    # An input an hour: after a day, only the day's stay (beyond the last RECENT_IDS).
    table.run([Delivery(EVENTS, n, click("c1"), at=T0 + n * hour) for n in range(RECENT_IDS + 48)])
    ledger = table["c1"].ledger
    assert len(ledger.recent_ids) == RECENT_IDS  # a day holds 25: the last 32 stay all the same
    assert ledger.offsets == {EVENTS: RECENT_IDS + 47}
    # Many at once: all in the window, up to the cap.
    table.run([Delivery(EVENTS, 1000 + n, click("c2"), at=T0) for n in range(MAX_RECENT_IDS + 50)])
    assert len(table["c2"].ledger.recent_ids) == MAX_RECENT_IDS


def test_a_copy_published_after_a_hundred_other_inputs_the_same_day_counts_once() -> None:
    table = Table()
    first = click("c1")
    others = [Delivery(EVENTS, 1 + n, click("c1"), at=T0 + n) for n in range(100)]
    table.run([Delivery(EVENTS, 0, first, at=T0), *others])
    before = table["c1"]
    table.run([Delivery(EVENTS, 500, first, at=T0 + 3600)])  # at a new offset, an hour later
    assert table["c1"].score == before.score


def test_a_merge_hands_the_state_to_the_survivor_exactly_once() -> None:
    table = Table()
    table.run(
        [
            Delivery(EVENTS, 0, click("old")),
            Delivery(EVENTS, 1, click("new")),
            Delivery(EVENTS, 2, click("new")),
        ]
    )
    record = merge("new", "old")
    first = table.run([Delivery(EVENTS, 3, record)])
    assert table["new"].merged_into == "old" and table["new"].score.intent_score == 0
    [handover] = first.handovers
    assert handover.customer_id == "old" and handover.state.intent_score == 8.0
    # The handover arrives twice (a replay of the merge before its row was durable), before the
    # survivor's input that joins it, and again after it.
    table.run([Delivery(HANDOVERS, 0, handover), Delivery(HANDOVERS, 1, handover)])
    assert table["old"].score.intent_score == 4.0  # held for its place
    table.run([Delivery(EVENTS, 4, joined(record))])
    assert table["old"].score.intent_score == 12.0
    assert table.run([Delivery(HANDOVERS, 2, handover)]).counts == {"duplicate": 1}
    assert table["old"].score.intent_score == 12.0


def test_inputs_that_still_name_a_merged_customer_go_on_to_the_survivor() -> None:
    table = Table()
    table.run([Delivery(EVENTS, 0, merge("new", "old"))])
    late = table.run([Delivery(EVENTS, 5, click("new"))])
    [handover] = late.handovers
    assert handover.customer_id == "old" and handover.input_json is not None
    assert late.counts == {"handed_over": 1}
    # A survivor merged later passes what it receives on again.
    table.run([Delivery(EVENTS, 6, merge("old", "oldest"))])
    onward = table.run([Delivery(HANDOVERS, 0, handover)])
    assert [h.customer_id for h in onward.handovers] == ["oldest"]
    table.run([Delivery(HANDOVERS, 1, onward.handovers[0])])
    assert table["oldest"].score.intent_score == 4.0


def test_a_handover_survives_the_wire() -> None:
    state = score_batch([Delivery(EVENTS, 0, click("new"))], {}.get, PLAN, NOW).records["new"].score
    late = click("new").model_dump_json()
    for handover in (
        ScoringHandover(handover_id="m", customer_id="old", from_customer_id="new", state=state),
        ScoringHandover(handover_id="e", customer_id="old", from_customer_id="new", input_json=late),
    ):
        assert ScoringHandover.model_validate_json(handover.model_dump_json(exclude_none=True)) == handover


def test_one_emission_per_customer_and_batch_on_a_big_enough_move() -> None:
    table = Table()
    first = table.run([Delivery(EVENTS, offset, click("c1")) for offset in range(3)])
    [score] = published(first)
    assert score.customer_id == "c1" and score.band == "medium" and score.previous_pct is None
    assert table["c1"].emitted_pct == score.intent_pct
    view = ScoringEvent(**(click("c1").model_dump() | {"type": "content.view"}))
    quiet = table.run([Delivery(EVENTS, 5, view)])
    assert quiet.scores == []  # 40% -> 44%: same band, less than 5 points
    booked = ScoringEvent(
        **(click("c1").model_dump() | {"type": "test_drive.booked", "vehicle_model": "id4"})
    )
    hot = table.run([Delivery(EVENTS, 6, booked)])
    assert [(s.band, s.previous_band, s.event_id) for s in published(hot)] == [
        ("hot", "medium", booked.event_id)
    ]
    assert published(hot)[0].model_interest["id4"] > 80


def published(outcome: BatchOutcome) -> list[IntentScoreChanged]:
    """The batch's intent.scores.v1 records, as their readers validate them: each written with
    every field of the model, in its order, keyed by its customer."""
    read = []
    for customer, value in outcome.scores:
        assert list(orjson.loads(value)) == list(IntentScoreChanged.model_fields)
        read.append(IntentScoreChanged.model_validate_json(value))
        assert read[-1].customer_id == customer
    return read


def passed_on(outcome: BatchOutcome) -> list[ChainInput]:
    return [ChainInput.model_validate_json(value) for _, value in outcome.chain]


def test_every_input_goes_on_along_the_chain_with_the_score_it_led_to() -> None:
    table = Table()
    clicks = [click("c1") for _ in range(3)]
    # An event goes on as it was read, properties and all (tagging and campaign read them).
    raw = [
        orjson.dumps({**c.model_dump(mode="json"), "properties": {"value_point": "rational"}}) for c in clicks
    ]
    outcome = table.run([Delivery(EVENTS, n, c, raw[n]) for n, c in enumerate(clicks)])
    chained = passed_on(outcome)
    assert [(c.input_id, c.customer_id) for c in chained] == [(e.event_id, "c1") for e in clicks]
    assert [round(c.score.intent_score, 2) for c in chained] == [4.0, 8.0, 12.0]  # decayed to now
    assert all(c.event.properties == {"value_point": "rational"} for c in chained)
    assert chained[-1].score.intent_pct == published(outcome)[-1].intent_pct  # as intent.scores.v1 says
    assert not table.run([Delivery(EVENTS, 0, clicks[0], raw[0])]).chain  # a redelivery: nothing


def test_a_merge_goes_on_in_its_place_and_the_survivor_passes_the_merged_in_score_on() -> None:
    table = Table()
    table.run([Delivery(EVENTS, 0, click("old")), Delivery(EVENTS, 1, click("new"))])
    record = merge("new", "old")
    merged = table.run([Delivery(EVENTS, 2, record)])
    ((_, value),) = merged.chain
    merge_input = ChainInput.model_validate_json(value)
    assert (merge_input.customer_id, merge_input.merge, merge_input.score) == ("new", record, None)
    late_click = click("new")
    late = table.run([Delivery(EVENTS, 3, late_click, orjson.dumps(late_click.model_dump(mode="json")))])
    assert not late.chain  # the survivor passes it on, with its own score
    # The survivor's input that joins the merge comes before the handover: it waits for it.
    waiting = table.run([Delivery(EVENTS, 4, joined(record))])
    assert not waiting.chain and waiting.counts == {"parked": 1}
    received = table.run(
        [Delivery(HANDOVERS, 0, merged.handovers[0]), Delivery(HANDOVERS, 1, late.handovers[0])]
    )
    merged_in, late_input = passed_on(received)
    assert (merged_in.input_id, merged_in.customer_id, round(merged_in.score.intent_score, 2)) == (
        f"merged:{record.merge_id}",
        "old",
        8.0,
    )
    assert merged_in.joins == record.merge_id  # downstream workers take their state in here too
    assert (late_input.input_id, late_input.event.customer_id, round(late_input.score.intent_score, 2)) == (
        late_click.event_id,
        "old",
        12.0,
    )


def test_a_tick_passes_on_what_time_alone_did_and_schedules_the_next_moment() -> None:
    table = Table()
    booked = click("c1").model_copy(update={"type": "test_drive.booked", "vehicle_model": "g6"})
    first = table.run([Delivery(EVENTS, 0, booked)])
    (hot,) = passed_on(first)
    assert (hot.score.band, hot.score.activity) == ("hot", "active_7d")
    due, seen = first.due["c1"], [(hot.score.band, hot.score.activity)]
    for n in range(1, 10):  # at each moment scheduled, a tick: time alone moved something
        assert due is not None
        tick = Tick(tick_id=f"decay:c1:{n}", customer_id="c1")
        later = score_batch([Delivery(TICKS, n, tick)], table.get, PLAN, due)
        table.update(later.records)
        (moved,) = passed_on(later)
        assert (moved.input_id, moved.event) == (tick.tick_id, None)
        assert (moved.score.band, moved.score.activity) != seen[-1]
        seen.append((moved.score.band, moved.score.activity))
        if moved.score.band != seen[-2][0]:  # intent.scores.v1 hears of a band change too
            (changed,) = published(later)
            assert (changed.band, changed.previous_band) == (moved.score.band, seen[-2][0])
        due = later.due["c1"]
        if due is None:
            break
    assert seen[-1] == ("low", "dormant") and {b for b, _ in seen} == {"hot", "high", "medium", "low"}
    # A merged customer keeps no clock: its ticks stay behind.
    table.run([Delivery(EVENTS, 99, merge("c1", "c0"))])
    assert not table.run([Delivery(TICKS, 99, Tick(tick_id="decay:c1:99", customer_id="c1"))]).handovers


def test_what_waits_at_the_barrier_survives_the_table_encoding() -> None:
    """Parked inputs and held handovers are in the row, so in the changelog: a worker that takes
    the partition over goes on where the barrier stood."""
    table = Table()
    table.run(
        [Delivery(EVENTS, 0, click("a")), Delivery(EVENTS, 1, click("b")), Delivery(EVENTS, 2, click("old"))]
    )
    first, second = merge("a", "old"), merge("b", "old")
    handovers = [
        *table.run([Delivery(EVENTS, 3, first)]).handovers,
        *table.run([Delivery(EVENTS, 4, second)]).handovers,
    ]
    late = click("old")
    table.run(
        [
            Delivery(HANDOVERS, 0, ScoringHandover.model_validate_json(handovers[1].model_dump_json())),
            Delivery(EVENTS, 5, joined(first)),
            Delivery(EVENTS, 6, late, late.model_dump_json().encode()),
        ]
    )
    barrier = table["old"].barrier
    assert (len(barrier.held), barrier.awaiting, len(barrier.parked)) == (1, first.merge_id, 2)
    codec = RecordCodec(CustomerRecord)
    table["old"] = codec.decode(codec.encode(table["old"]))
    assert table["old"].barrier == barrier
    released = table.run([Delivery(HANDOVERS, 1, handovers[0]), Delivery(EVENTS, 7, joined(second))])
    assert released.counts == {"merged_in": 2, "processed": 3}
    assert table["old"].score.intent_score == 16.0 and table["old"].barrier.joined == (
        first.merge_id,
        second.merge_id,
    )


def latest(outcome: BatchOutcome) -> list[tuple[str, dict, float]]:
    return [(customer, orjson.loads(entry), at) for customer, entry, at in outcome.latest_events]


def test_every_applied_event_leaves_an_entry_with_the_listed_fields_only() -> None:
    table = Table()
    shared = click("c1").model_copy(update={"type": "content.share", "content_id": "c-spec-001"})
    on_the_wire = {
        **shared.model_dump(mode="json", exclude={"content_id"}),
        "identities": {"phone": "hashed-13900001234", "unionid": "o6_secret"},
        "properties": {"content_id": "c-spec-001", "note": "call me on 13900001234", "topics": ["tech"]},
    }
    raw = orjson.dumps(on_the_wire)
    outcome = table.run([Delivery(EVENTS, 0, ScoringEvent.model_validate_json(raw), raw)])
    [(customer, entry, at)] = latest(outcome)
    assert customer == "c1" and at == shared.occurred_at.timestamp()
    assert entry == {
        "event_id": shared.event_id,
        "type": "content.share",
        "source": "wecom",
        "occurred_at": shared.occurred_at.isoformat(),
        "intent_added": 6.0,
        "points_added": 5,
        "content_id": "c-spec-001",
    }
    stored = outcome.latest_events[0][1]
    assert b"13900001234" not in stored and b"o6_secret" not in stored


def test_an_entry_says_what_the_plan_gave_the_event_whatever_came_before() -> None:
    table = Table()
    table.run([Delivery(EVENTS, 0, click("c1", minutes_ago=1))])
    # Two weeks older than the score: the entry still says 4 x 0.8, not its decayed weight.
    late_ad = click("c1", minutes_ago=60 * 24 * 14).model_copy(update={"source": Source.ad})
    custom = click("c1").model_copy(update={"type": "custom.poll_vote"})
    booked = click("c1").model_copy(update={"type": "test_drive.booked", "vehicle_model": "id4"})
    outcome = table.run([Delivery(EVENTS, n, e) for n, e in enumerate((late_ad, custom, booked), start=1)])
    entries = [entry for _, entry, _ in latest(outcome)]
    added = [(e["intent_added"], e["points_added"]) for e in entries]
    assert added == [(3.2, None), (None, None), (45.0, None)]
    assert entries[2]["vehicle_model"] == "id4" and "content_id" not in entries[2]


def test_the_same_event_scored_again_after_a_crash_makes_the_same_entry() -> None:
    """Redis was written, the table's changelog was not: the restarted worker applies the inputs
    again, on the rows as they were, maybe cut into other batches, and must write the same
    members (a sorted set keeps one of each)."""
    deliveries = [Delivery(EVENTS, n, e) for n, e in enumerate((click("c1"), click("c2"), click("c1")))]
    first = Table().run(deliveries)
    again = Table()
    replayed = [*again.run(deliveries[:1]).latest_events, *again.run(deliveries[1:]).latest_events]
    assert len(first.latest_events) == 3 and sorted(replayed) == sorted(first.latest_events)
    assert not again.run(deliveries[1:2]).latest_events  # a redelivery the ledger catches: nothing


def test_a_merged_customers_entries_go_to_the_survivor() -> None:
    table = Table()
    table.run([Delivery(EVENTS, 0, click("old")), Delivery(EVENTS, 1, click("new"))])
    record = merge("new", "old")
    merged = table.run([Delivery(EVENTS, 2, record)])
    assert not merged.latest_events and not merged.events_moved  # the survivor has not taken them in
    late_click = click("new")
    late = table.run([Delivery(EVENTS, 3, late_click, orjson.dumps(late_click.model_dump(mode="json")))])
    assert not late.latest_events  # handed on, not applied here
    received = table.run(
        [
            Delivery(EVENTS, 4, joined(record)),
            Delivery(HANDOVERS, 0, merged.handovers[0]),
            Delivery(HANDOVERS, 1, late.handovers[0]),
        ]
    )
    assert received.events_moved == [("old", "new")]
    assert [(c, e["event_id"]) for c, e, _ in latest(received)] == [("old", late_click.event_id)]


def test_an_event_entered_twice_under_two_plans_is_shown_once() -> None:
    """A replay across a plan change leaves two members for one event: the reader shows one."""
    booked = click("c1").model_copy(update={"type": "test_drive.booked"})
    heavier = PLAN.model_copy(update={"weights": PLAN.weights | {"test_drive.booked": 50.0}})
    later, earlier = click("c1", minutes_ago=0), click("c1", minutes_ago=5)
    as_read = [(later, PLAN), (booked, PLAN), (booked, heavier), (earlier, PLAN)]  # newest first
    entries = [latest_entry(event, plan) for event, plan in as_read]
    assert len(set(entries)) == 4
    shown = newest(entries, limit=10)
    assert [e.event_id for e in shown] == [later.event_id, booked.event_id, earlier.event_id]
    assert [e.event_id for e in newest(entries, limit=2)] == [later.event_id, booked.event_id]
