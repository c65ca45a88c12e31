"""Scoring domain: the paper's calibration, bands, decay, per-model interest, membership."""

from datetime import UTC, datetime, timedelta
from itertools import permutations

import pytest
from pydantic import ValidationError

from services.scoring.calibration import CALIBRATION_DAY, check_plan
from services.scoring.inputs import ScoringEvent
from services.scoring.intent import (
    MAX_MODELS,
    Activity,
    Band,
    CustomerScore,
    activity_of,
    apply_event,
    band_of,
    intent_pct,
    level_of,
    merge_states,
    next_change_at,
    score_at,
    should_emit,
)
from services.scoring.plan import ScoringPlan, default_plan
from tests.factories import event

PLAN = default_plan()
T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def ingested(event_type: str, at: datetime, source: str = "wecom", **properties: object) -> ScoringEvent:
    raw = event(type=event_type, source=source, occurred_at=at.isoformat(), properties=properties)
    return ScoringEvent.model_validate(raw | {"customer_id": "cus_1", "received_at": at})


def replay(events: list[ScoringEvent], plan: ScoringPlan = PLAN) -> CustomerScore:
    state = CustomerScore(customer_id="cus_1")
    for one in events:
        state = apply_event(state, one, plan)
    return state


def pct_now(state: CustomerScore, now: datetime) -> float:
    return intent_pct(score_at(state, now, PLAN), PLAN)


def test_paper_calibration_five_clicks_and_a_favourite_in_a_day_is_70_percent() -> None:
    day = [ingested("content.click", T0 + timedelta(hours=2 * i), content_id=f"c{i}") for i in range(5)]
    day.append(ingested("content.favorite", T0 + timedelta(hours=11), content_id="c4"))
    state = replay(day)
    for read_at in (T0 + timedelta(hours=12), T0 + timedelta(days=1)):
        assert 65 <= pct_now(state, read_at) <= 75
    assert band_of(pct_now(state, T0 + timedelta(hours=12)), PLAN) is Band.high


def test_the_plan_check_finds_the_papers_calibration_in_the_default_plan() -> None:
    check = check_plan(PLAN)
    assert 65 <= check.calibration.intent_pct <= 75 and check.calibration.band is Band.high
    assert check.test_drive.intent_pct == pytest.approx(85.5, abs=0.1) and check.test_drive.band is Band.hot
    # The same day as the calibration test above, read the moment the favourite is in.
    day = [ingested(t, T0 + timedelta(hours=h), content_id="c") for t, h in CALIBRATION_DAY]
    assert check.calibration.intent_pct == round(pct_now(replay(day), day[-1].occurred_at), 2)


def test_the_plan_check_follows_the_candidate_plan() -> None:
    lighter = PLAN.model_copy(update={"weights": PLAN.weights | {"content.click": 2.0}})
    slower = PLAN.model_copy(update={"pct_scale": 46.6})
    wecom_down = PLAN.model_copy(update={"source_multipliers": {"wecom": 0.5}})
    strict = PLAN.model_copy(update={"bands": PLAN.bands.model_copy(update={"hot": 90.0})})
    default = check_plan(PLAN)
    assert check_plan(lighter).calibration.intent_pct < default.calibration.intent_pct  # 18 points
    assert check_plan(lighter).test_drive == default.test_drive
    assert [r.band for r in (check_plan(slower).calibration, check_plan(slower).test_drive)] == [
        Band.medium,  # 28 points on a scale of 46.6: 45 %
        Band.high,  # 62 %
    ]
    assert check_plan(wecom_down).calibration.intent_pct < default.calibration.intent_pct
    assert (check_plan(strict).test_drive.band, check_plan(strict).calibration) == (
        Band.high,
        default.calibration,
    )


@pytest.mark.parametrize("history", [[], ["content.view"], ["lead.defeated"], ["content.click"] * 10])
def test_a_test_drive_booking_takes_any_customer_to_hot(history: list[str]) -> None:
    before = [ingested(t, T0 + timedelta(minutes=i), content_id="c") for i, t in enumerate(history)]
    booked = T0 + timedelta(hours=1)
    state = replay([*before, ingested("test_drive.booked", booked, vehicle_model="id4")])
    assert pct_now(state, booked) >= 85
    assert band_of(pct_now(state, booked), PLAN) is Band.hot


def test_intent_decays_with_a_14_day_half_life() -> None:
    state = replay([ingested("quote.requested", T0, vehicle_model="id4")])
    now = score_at(state, T0, PLAN)
    assert score_at(state, T0 + timedelta(days=14), PLAN) == pytest.approx(now / 2)
    assert score_at(state, T0 + timedelta(days=42), PLAN) == pytest.approx(now / 8)
    faded = pct_now(state, T0 + timedelta(days=70))
    assert faded < 5 and band_of(faded, PLAN) is Band.low


def test_the_order_events_arrive_in_does_not_change_the_score() -> None:
    events = [
        ingested("content.click", T0, content_id="a"),
        ingested("config.build", T0 + timedelta(days=3), vehicle_model="id4"),
        ingested("content.favorite", T0 + timedelta(days=9), content_id="b"),
    ]
    read_at = T0 + timedelta(days=10)
    scores = {round(score_at(replay(list(order)), read_at, PLAN), 9) for order in permutations(events)}
    assert len(scores) == 1


def test_defeat_lowers_intent_but_never_below_zero() -> None:
    state = replay(
        [ingested("content.click", T0, content_id="a"), ingested("lead.defeated", T0, reason="price")]
    )
    assert state.intent_score == 0.0
    assert pct_now(state, T0) == 0.0


def test_source_multipliers_weigh_in_person_above_paid_traffic() -> None:
    store = replay([ingested("content.click", T0, source="dealer_store", content_id="a")])
    ad = replay([ingested("content.click", T0, source="ad", content_id="a")])
    app = replay([ingested("content.click", T0, source="app", content_id="a")])
    assert store.intent_score > app.intent_score > ad.intent_score


def test_model_interest_follows_vehicle_models() -> None:
    state = replay(
        [
            ingested("config.build", T0, vehicle_model="id4"),
            ingested("test_drive.booked", T0, vehicle_model="id6"),
            ingested("content.click", T0, content_id="a"),
        ]
    )
    assert set(state.model_scores) == {"id4", "id6"}
    assert state.model_scores["id6"] > state.model_scores["id4"]


def test_model_interest_keeps_the_strongest_models_only() -> None:
    # One test drive for m00, then a config build for each of many models: m00 stays the strongest.
    events = [ingested("test_drive.booked", T0, vehicle_model="m00")]
    events += [ingested("config.build", T0, vehicle_model=f"m{n:02}") for n in range(1, MAX_MODELS * 3)]
    state = replay(events)
    assert len(state.model_scores) == MAX_MODELS
    assert "m00" in state.model_scores
    # Equal scores: the models named first stay, whatever order they came in.
    assert set(state.model_scores) == {"m00", *(f"m{n:02}" for n in range(1, MAX_MODELS))}
    assert replay(list(reversed(events))).model_scores.keys() == state.model_scores.keys()
    # A model that gains interest replaces the weakest.
    later = apply_event(state, ingested("test_drive.booked", T0, vehicle_model="zz"), PLAN)
    assert "zz" in later.model_scores and len(later.model_scores) == MAX_MODELS


def test_merging_keeps_the_strongest_models_only() -> None:
    one = replay([ingested("config.build", T0, vehicle_model=f"a{n:02}") for n in range(MAX_MODELS)])
    other = replay([ingested("test_drive.booked", T0, vehicle_model=f"b{n:02}") for n in range(MAX_MODELS)])
    merged = merge_states(one, other, PLAN)
    assert set(merged.model_scores) == set(other.model_scores)  # test drives weigh more


def test_a_label_longer_than_a_published_one_can_be_does_not_decode() -> None:
    # Longer than ingest's 128 characters is possible (phone numbers in it become hashes).
    ingested("config.build", T0, vehicle_model="x" * 1024)
    raw = event(type="config.build", properties={"vehicle_model": "x" * 1025})
    with pytest.raises(ValidationError):
        ScoringEvent.model_validate(raw | {"customer_id": "cus_1", "received_at": T0})


def test_points_and_growth_accumulate_and_growth_sets_the_level() -> None:
    state = replay(
        [
            ingested("referral.made", T0),
            ingested("community.post", T0),
            ingested("content.view", T0, content_id="c"),
        ]
    )
    assert (state.points, state.growth) == (55, 110)
    assert level_of(state.growth, PLAN) == "silver"
    assert level_of(0, PLAN) == "member"
    assert level_of(5000, PLAN) == "platinum"


def test_activity_from_the_last_own_interaction() -> None:
    state = replay(
        [
            ingested("content.view", T0, content_id="c"),
            ingested("campaign.delivered", T0 + timedelta(days=20), action_id="a1"),
        ]
    )
    assert state.last_interaction_at == T0  # a delivered campaign is not the customer's doing
    assert activity_of(state, T0 + timedelta(days=6), PLAN) is Activity.active_7d
    assert activity_of(state, T0 + timedelta(days=29), PLAN) is Activity.active_30d
    assert activity_of(state, T0 + timedelta(days=31), PLAN) is Activity.dormant
    assert activity_of(CustomerScore(customer_id="x"), T0, PLAN) is Activity.dormant


def test_merging_adds_the_decayed_scores_and_membership() -> None:
    one = replay([ingested("content.click", T0, content_id="a"), ingested("referral.made", T0)])
    other = replay([ingested("config.build", T0 + timedelta(days=14), vehicle_model="id4")])
    merged = merge_states(one, other, PLAN)
    read_at = T0 + timedelta(days=14)
    assert score_at(merged, read_at, PLAN) == pytest.approx(
        score_at(one, read_at, PLAN) + score_at(other, read_at, PLAN)
    )
    assert (merged.points, merged.growth) == (one.points + other.points, one.growth + other.growth)
    assert merged.model_scores == other.model_scores


def test_emits_on_band_change_or_a_five_point_move() -> None:
    assert should_emit(None, 10, PLAN)
    assert not should_emit(40, 44, PLAN)
    assert should_emit(40, 45, PLAN)
    assert should_emit(58, 61, PLAN)  # medium -> high
    assert not should_emit(61, 58 + 3.5, PLAN)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"half_life_days": 0}, "half_life_days"),
        ({"bands": {"medium": 60, "high": 30, "hot": 85}}, "bands"),
        ({"weights": {"content.clicked": 1}}, "weights"),
        ({"levels": {"member": 10}}, "levels"),
        ({"source_multipliers": {"tiktok": 1}}, "source_multipliers"),
    ],
)
def test_bad_plans_are_refused_with_the_field_named(change: dict, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ScoringPlan.model_validate(PLAN.model_dump() | change)
    assert caught.value.errors()[0]["loc"][0] == field


def test_the_default_plan_weights_every_contract_type() -> None:
    from shared.events import EVENT_TYPES

    assert set(EVENT_TYPES) <= set(PLAN.weights)


def test_the_moment_decay_alone_moves_a_band_or_the_activity_is_solved_not_searched() -> None:
    hot = replay([ingested("test_drive.booked", T0, vehicle_model="g6")])

    def band(at: datetime) -> Band:
        return band_of(intent_pct(score_at(hot, at, PLAN), PLAN), PLAN)

    def activity(at: datetime) -> Activity:
        return activity_of(hot, at, PLAN)

    seen = [(band(T0), activity(T0))]
    at: datetime | None = T0
    while (at := next_change_at(hot, at, PLAN)) is not None:
        # Each moment is just past a change, and nothing changed a minute before it.
        assert (band(at), activity(at)) != (
            band(at - timedelta(minutes=1)),
            activity(at - timedelta(minutes=1)),
        )
        seen.append((band(at), activity(at)))
    assert [b for b, _ in seen] == sorted((b for b, _ in seen), key=list(Band).index, reverse=True)
    assert seen[0] == (Band.hot, Activity.active_7d)
    assert seen[-1] == (Band.low, Activity.dormant)
    assert {a for _, a in seen} == set(Activity)
    assert {b for b, _ in seen} == set(Band)
    assert next_change_at(CustomerScore(customer_id="nobody"), T0, PLAN) is None


def test_points_granted_by_a_campaign_are_spent_by_redemptions_never_below_zero() -> None:
    granted = ingested("points.granted", T0, source="campaign", points=300, action_id="a-1")
    assert replay([granted]).points == 300
    spent = ingested("points.redeemed", T0 + timedelta(hours=1), source="mall", points=120)
    assert replay([granted, spent]).points == 180
    too_many = ingested("points.redeemed", T0 + timedelta(hours=2), source="mall", points=1000)
    assert replay([granted, spent, too_many]).points == 0
    # Earned by behaviour too, and a grant moves neither intent nor activity.
    share = ingested("content.share", T0, content_id="c-1")
    assert replay([share, granted]).points == PLAN.points["content.share"] + 300
    assert replay([granted]).intent_score == 0 and replay([granted]).last_interaction_at is None


def test_levels_bring_their_benefits_and_a_plan_naming_an_unknown_level_is_refused() -> None:
    assert set(PLAN.benefits) <= set(PLAN.levels) and PLAN.benefits["gold"]
    with pytest.raises(ValidationError, match="benefits of levels the plan does not have: diamond"):
        ScoringPlan.model_validate(PLAN.model_dump() | {"benefits": {"diamond": ["lounge"]}})


def test_the_chain_carries_the_car_model_the_customer_is_most_interested_in() -> None:
    from services.scoring.batch import snapshot
    from shared.chain import ScoreSnapshot, chain_record

    state = replay(
        [
            ingested("config.build", T0, vehicle_model="P7"),
            ingested("test_drive.booked", T0 + timedelta(hours=1), vehicle_model="G6"),
        ]
    )
    assert snapshot(state, PLAN, T0 + timedelta(hours=2))["top_model"] == "G6"
    assert snapshot(replay([ingested("content.click", T0, content_id="c-1")]), PLAN, T0)["top_model"] is None
    # The fold's fields are a ScoreSnapshot's: the chain record is the one the model makes.
    fields = snapshot(state, PLAN, T0 + timedelta(hours=2))
    model = ScoreSnapshot.model_validate(fields)
    assert chain_record("e-1", "c", score=fields) == chain_record("e-1", "c", score=model)
