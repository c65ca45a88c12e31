"""Table rows survive the changelog: what RecordCodec writes, it reads back equal (all three workers)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest

from services.campaign.batch import JourneyRecord
from services.campaign.consent import UNDATED, Consent
from services.campaign.decide import Decision, Pacing
from services.campaign.definitions import ActionKind, Channel
from services.campaign.journey import Journey, Scheduled, Touch
from services.campaign.targeting import CustomerView
from services.scoring.batch import CustomerRecord
from services.scoring.intent import CustomerScore
from services.tagging.batch import ProfileRecord
from services.tagging.funnel import FunnelStep
from services.tagging.profile import Profile
from services.tagging.rules import Evidence, Layer, Orientation
from shared.compact import EMPTY, one_copy
from shared.fold import NO_BARRIER
from shared.ledger import Ledger
from shared.record_table import RecordCodec

NOW = datetime(2026, 11, 26, 1, 30, 15, 123456, tzinfo=UTC)
LEDGER = Ledger(offsets={"touchpoint.events.v1/2": 1041, "pd-x-handovers/2": 7}, recent_ids=("e-1", "e-2"))


def scoring_row() -> CustomerRecord:
    score = CustomerScore("c-1", 41.25, {"g6": 12.5}, NOW, points=30, growth=12, last_interaction_at=NOW)
    return CustomerRecord(score=score, ledger=LEDGER, emitted_pct=63.2)


def tagging_row() -> ProfileRecord:
    profile = Profile(
        customer_id="c-1",
        layer=Layer.defeated,
        defeated_received_at=NOW,
        interactions=12,
        value_points={"rational": 3.5, "emotional": 1.0},
        topics={"tech": 4},
        purchase_amount=1288.5,
        last_event_at=NOW,
        evidence={"clicks_7d": Evidence(3, (NOW - timedelta(days=1), NOW))},
        orientation=Orientation.rational,
        tags=("interest:tech", "price_sensitive"),
    )
    return ProfileRecord(profile=profile, ledger=LEDGER, merged_into="c-0")


def campaign_row() -> JourneyRecord:
    deferred = Decision(
        "a-1",
        "nurture",
        "c-1",
        ActionKind.send_content,
        Channel.wecom_1v1,
        "ct-9",
        "B",
        "deferred",
        "quiet_hours",
        NOW,
        deliver_at=NOW + timedelta(hours=9),
    )
    consents = {"wecom_1v1": Consent(True, NOW), "sms": Consent(False, NOW + timedelta(minutes=1))}
    view = CustomerView("c-1", tags=frozenset({"ripple", "price_sensitive"}), consents=consents)
    journey = Journey(
        view=view,
        pacing=Pacing(entered=frozenset({"nurture", "recall"}), sent_on={"nurture": ("2026-11-26", 2)}),
        scheduled=(Scheduled(NOW + timedelta(hours=9), "deliver", "nurture", "e-2", deferred),),
        touches=(Touch("nurture", "B", NOW),),
    )
    return JourneyRecord(journey=journey, ledger=LEDGER)


@pytest.mark.parametrize(
    "row", [scoring_row(), tagging_row(), campaign_row()], ids=["scoring", "tagging", "campaign"]
)
def test_a_row_reads_back_equal(row) -> None:
    codec = RecordCodec(type(row))
    assert codec.decode(codec.encode(row)) == row


@pytest.mark.parametrize(
    "row", [scoring_row(), tagging_row(), campaign_row()], ids=["scoring", "tagging", "campaign"]
)
def test_a_row_belongs_to_the_partition_of_its_latest_input(row) -> None:
    codec = RecordCodec(type(row))
    assert codec.row_partition(row) == 2  # LEDGER's latest mark: pd-x-handovers/2
    assert codec.row_partition(replace(row, ledger=Ledger())) is None


def test_sets_are_written_in_a_stable_order() -> None:
    written = orjson.loads(RecordCodec(JourneyRecord).encode(campaign_row()))
    assert written["journey"]["view"]["tags"] == ["price_sensitive", "ripple"]
    assert written["journey"]["pacing"]["entered"] == ["nurture", "recall"]


def test_consents_written_before_they_were_dated_read_back_as_the_oldest_word() -> None:
    codec = RecordCodec(JourneyRecord)
    written = orjson.loads(codec.encode(campaign_row()))
    written["journey"]["view"]["consents"] = {"wecom_1v1": True, "sms": False}  # the old shape
    consents = codec.decode(orjson.dumps(written)).journey.view.consents
    assert consents == {"wecom_1v1": Consent(True, UNDATED), "sms": Consent(False, UNDATED)}
    assert codec.decode(codec.encode(codec.decode(orjson.dumps(written)))).journey.view.consents == consents


def test_rows_read_back_share_what_many_rows_hold() -> None:
    # Two customers' rows with nothing in their mappings and the same texts, tuples, day and
    # amount, and ledgers of one partition.
    plain = Profile(
        customer_id="c-2",
        tags=("interest:tech",),
        milestones=("lead",),
        entered_on="2026-11-26",
        band="hot",
        level="silver",
        activity="active",
        first_source="wecom",
        dealer_id="d-1",
        reached=(FunnelStep.friend_added,),
        recent_contents=("c-9",),
        purchase_amount=12.5,
    )
    codec = RecordCodec(ProfileRecord)
    first, second = (
        codec.decode(
            codec.encode(ProfileRecord(profile=replace(plain, customer_id=c), ledger=Ledger({"t/1": 3})))
        )
        for c in ("a", "b")
    )
    assert next(iter(first.ledger.offsets)) is next(iter(second.ledger.offsets))
    first, second = first.profile, second.profile
    for name in (
        *("value_points", "topics", "evidence", "tags", "milestones", "entered_on", "band", "level"),
        *("activity", "first_source", "dealer_id", "reached", "recent_contents", "purchase_amount"),
    ):
        assert getattr(first, name) is getattr(second, name), name
    assert type(first.reached[0]) is FunnelStep
    assert first.value_points is EMPTY and first == replace(plain, customer_id="a")
    scoring = RecordCodec(CustomerRecord)
    read = scoring.decode(scoring.encode(CustomerRecord(score=CustomerScore("c-3"))))
    assert read.score.model_scores is EMPTY and read.barrier is NO_BARRIER
    assert CustomerScore("c-4").model_scores is EMPTY and Profile("c-5").topics is EMPTY


def test_the_shared_empty_mapping_cannot_be_changed() -> None:
    for change in (
        lambda: EMPTY.__setitem__("k", 1),
        lambda: EMPTY.update(k=1),
        lambda: EMPTY.setdefault("k", 1),
        lambda: EMPTY.pop("k"),
    ):
        with pytest.raises(TypeError):
            change()
    assert EMPTY == {} and orjson.dumps(EMPTY) == b"{}" and (EMPTY | {"k": 1}) == {"k": 1} and not EMPTY


def test_one_copy_keeps_equal_values_of_other_kinds_apart() -> None:
    assert type(one_copy(1)) is int and type(one_copy(1.0)) is float and one_copy(True) is True
    assert type(one_copy(("friend_added",))[0]) is str
    assert type(one_copy((FunnelStep.friend_added,))[0]) is FunnelStep


def test_one_copy_keeps_a_datetime_s_offset() -> None:
    utc = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
    shanghai = datetime(2026, 12, 1, 8, 0, tzinfo=timezone(timedelta(hours=8)))
    assert utc == shanghai  # the same instant
    assert one_copy(utc) is utc and one_copy(shanghai).isoformat() == "2026-12-01T08:00:00+08:00"
    assert one_copy(datetime(2026, 12, 1, 0, 0, tzinfo=UTC)) is utc
