"""The console's pure parts: languages, the session cookie, forms <-> API JSON, chart shaping."""

from __future__ import annotations

import json
import time

import pytest

from services.campaign.definitions import Campaign
from services.console import forms, views
from services.console.i18n import CATALOGUES, EN, ZH, negotiate, translator, value_namer
from services.console.pages import local_path
from services.console.session import SessionCodec


def test_both_languages_have_every_word() -> None:
    assert set(ZH) == set(EN)
    assert all(ZH.values()) and all(EN.values())
    assert set(CATALOGUES) == {"zh-CN", "en"}


@pytest.mark.parametrize(
    ("cookie", "accept", "expected"),
    [
        (None, None, "zh-CN"),
        (None, "en-US,en;q=0.9", "en"),
        (None, "zh-TW,zh;q=0.9,en;q=0.5", "zh-CN"),
        (None, "fr-FR,en;q=0.5", "en"),
        ("en", "zh-CN", "en"),  # the switch beats the browser
        ("xx", "en", "en"),  # an unknown cookie is ignored
    ],
)
def test_language_comes_from_the_switch_then_the_browser(
    cookie: str | None, accept: str, expected: str
) -> None:
    assert negotiate(cookie, accept) == expected


def test_words_and_domain_values_are_translated() -> None:
    assert translator("zh-CN")("nav.campaigns") == "活动"
    assert translator("en")("nav.campaigns") == "Campaigns"
    assert translator("en")("no.such.key") == "no.such.key"
    assert value_namer("zh-CN")("band", "hot") == "热"
    assert value_namer("en")("band", "hot") == "hot"
    assert value_namer("en")("activity", "active_7d") == "active 7 days"
    assert value_namer("en")("stage", "die_hard_fan") == "die hard fan"
    assert value_namer("zh-CN")("band", None) == "—"


def test_a_session_survives_the_cookie_and_nothing_else_does() -> None:
    codec = SessionCodec("a-secret-of-at-least-thirty-two-chars", max_age_s=60)
    session = codec.open("ops-token-1")
    cookie = codec.seal(session)
    assert "ops-token-1" not in cookie  # encrypted, not just signed
    assert codec.unseal(cookie) == session
    # A character in the middle: near the end, base64 may carry padding bits a change leaves out.
    middle = len(cookie) // 2
    assert (
        codec.unseal(cookie[:middle] + ("A" if cookie[middle] != "A" else "B") + cookie[middle + 1 :]) is None
    )
    assert codec.unseal("") is None and codec.unseal(None) is None
    other = SessionCodec("another-secret-of-thirty-two-chars!!", max_age_s=60)
    assert other.unseal(cookie) is None
    assert codec.open("t").csrf != codec.open("t").csrf


def test_a_session_expires() -> None:
    codec = SessionCodec("a-secret-of-at-least-thirty-two-chars", max_age_s=1)
    cookie = codec.seal(codec.open("t"))
    # Fernet's timestamps have whole seconds: 2.1 s later the session is certainly older than 1 s.
    deadline = time.monotonic() + 5
    while codec.unseal(cookie) is not None:
        assert time.monotonic() < deadline, "the session never expired"
        time.sleep(0.1)


def test_redirects_stay_on_the_site() -> None:
    assert local_path("/campaigns?x=1") == "/campaigns?x=1"
    for hostile in ("https://evil.example/", "//evil.example/", "/\\evil.example", "", None):
        assert local_path(hostile) == "/"


def test_a_campaign_form_becomes_the_definition_the_api_takes() -> None:
    posted = {
        "id": ["spring-test-drive"],
        "name": ["春季试驾"],
        "status": ["active"],
        "trigger.on": ["band_entered"],
        "trigger.value": ["hot"],
        "trigger.delay_hours": [""],
        "audience.layers": ["prospect", "intent"],
        "audience.tags_all": ["interest:suv，price_sensitive"],
        "audience.tags_none": [""],
        "action.kind": ["send_content"],
        "action.channel": ["wecom_1v1"],
        "action.content.rational": ["c-spec"],
        "action.content.emotional": [""],
        "action.content.default": ["c-brand"],
        "action.variants": [""],
        "holdout_pct": ["10"],
        "frequency_cap.per_customer_per_day": ["1"],
        "reentry": ["never"],
        "reentry_after_days": [""],
        "respect_quiet_hours": ["1"],
    }
    definition, errors = forms.campaign_of(posted)
    assert errors == {}
    assert definition == {
        "id": "spring-test-drive",
        "name": "春季试驾",
        "status": "active",
        "trigger": {"on": "band_entered", "value": "hot"},
        "audience": {
            "layers": ["prospect", "intent"],
            "orientations": [],
            "stages": [],
            "bands": [],
            "tags_all": ["interest:suv", "price_sensitive"],
            "tags_none": [],
        },
        "action": {
            "kind": "send_content",
            "channel": "wecom_1v1",
            "content": {"rational": "c-spec", "default": "c-brand"},
        },
        "holdout_pct": "10",
        "frequency_cap": {"per_customer_per_day": "1"},
        "reentry": "never",  # and no reentry_after_days: left empty, not sent
        "exit_on_conversion": False,  # a checkbox left unchecked
        "respect_quiet_hours": True,
    }
    # And back: the form shows what the definition holds.
    values = forms.campaign_form(definition)
    assert values["audience.tags_all"] == "interest:suv, price_sensitive"
    assert values["audience.layers"] == ["prospect", "intent"]
    assert values["action.content.default"] == "c-brand"
    assert values["respect_quiet_hours"] is True and values["exit_on_conversion"] is False
    assert values["reentry"] == "never" and values["reentry_after_days"] == ""


def test_reentry_after_days_and_exit_on_conversion_go_to_the_api_as_typed() -> None:
    from services.campaign.definitions import Campaign

    posted = {
        "id": ["recall"],
        "name": ["recall"],
        "trigger.on": ["layer_entered"],
        "trigger.value": ["defeated"],
        "trigger.delay_hours": ["72"],
        "action.kind": ["send_content"],
        "action.channel": ["wecom_1v1"],
        "action.content.default": ["c-recall"],
        "reentry": ["after_days"],
        "reentry_after_days": ["30"],
        "exit_on_conversion": ["1"],
    }
    definition, errors = forms.campaign_of(posted)
    assert errors == {}
    assert (definition["reentry"], definition["reentry_after_days"]) == ("after_days", "30")
    assert definition["exit_on_conversion"] is True
    campaign = Campaign.model_validate(definition)
    assert (campaign.reentry, campaign.reentry_after_days, campaign.exit_on_conversion) == (
        "after_days",
        30,
        True,
    )
    values = forms.campaign_form(campaign.model_dump(mode="json"))
    assert (values["reentry"], values["reentry_after_days"], values["exit_on_conversion"]) == (
        "after_days",
        "30.0",
        True,
    )


def test_a_new_campaign_form_never_re_enters_and_exits_on_conversion() -> None:
    values = forms.new_campaign_form()
    assert values["reentry"] == "never" and values["reentry_after_days"] == ""
    assert values["exit_on_conversion"] is True
    # A definition from before the modes, with re-entry as a bool, shows as its mode.
    assert forms.campaign_form({"reentry": True})["reentry"] == "always"
    assert forms.campaign_form({"reentry": False})["reentry"] == "never"


def rendered(template: str, **context: object) -> str:
    """A console page as the English console renders it for a signed-in operator."""
    from services.console.app import templates

    common = {
        "t": translator("en"),
        "v": value_namer("en"),
        "lang": "en",
        "other_lang": "zh-CN",
        "here": "",
        "csrf": "x",
        "signed_in": True,
        "refresh_s": 30,
        "nav": "campaigns",
    }
    return templates().env.get_template(template).render(**common, **context)


def test_the_campaign_form_offers_the_reentry_modes() -> None:
    page = rendered(
        "campaign_form.html",
        editing=None,
        values=forms.new_campaign_form(),
        errors={"reentry_after_days": ["reentry after_days needs the number of days"]},
        trigger_kinds=forms.TRIGGER_KINDS,
        action_kinds=forms.ACTION_KINDS,
        channels=forms.CHANNELS,
    )
    assert '<select name="reentry">' in page
    for mode in ("never", "always", "after_days"):
        assert f'<option value="{mode}"' in page
    assert '<option value="never" selected>' in page
    assert 'name="reentry_after_days" value=""' in page
    assert 'name="exit_on_conversion" value="1" checked' in page
    assert 'type="checkbox" name="reentry"' not in page  # no longer a checkbox
    assert "reentry after_days needs the number of days" in page  # the API's error at its field


def test_the_campaign_model_takes_what_the_form_sends() -> None:
    from services.campaign.definitions import Campaign

    definition, _ = forms.campaign_of(
        {
            "id": ["x1"],
            "name": ["x"],
            "trigger.on": ["event"],
            "trigger.value": ["test_drive.booked"],
            "action.kind": ["grant_points"],
            "action.channel": ["membership"],
            "action.points": ["50"],
            "holdout_pct": ["5"],
        }
    )
    campaign = Campaign.model_validate(definition)
    assert campaign.action.points == 50 and campaign.holdout_pct == 5


def test_variants_that_are_not_json_are_refused_at_their_field() -> None:
    _, errors = forms.campaign_of({"id": ["x"], "action.variants": ["[{oops"]})
    assert list(errors) == ["action.variants"]


def test_api_errors_land_at_the_fields_they_name() -> None:
    detail = [
        {"loc": ["body", "holdout_pct"], "msg": "Input should be less than or equal to 100"},
        {"loc": ["body", "trigger"], "msg": "Value error, band_entered takes one of low, medium, high, hot"},
        {"loc": ["body", "action", "variants", 0, "name"], "msg": "String should match pattern"},
        {"loc": ["body", "action", "content", "default"], "msg": "Field required"},
        {"loc": ["body", "surprise"], "msg": "Extra inputs are not permitted"},
        {"loc": ["body", "reentry_after_days"], "msg": "Value error, reentry after_days needs the number"},
    ]
    placed = forms.errors_at_fields(detail, (*forms.CAMPAIGN_FIELDS, *forms.CAMPAIGN_GROUPS))
    assert placed == {
        "holdout_pct": ["Input should be less than or equal to 100"],
        "trigger": ["band_entered takes one of low, medium, high, hot"],
        "action.variants": ["String should match pattern"],
        "action.content.default": ["Field required"],
        forms.FORM_ERROR: ["Extra inputs are not permitted"],
        "reentry_after_days": ["reentry after_days needs the number"],
    }
    assert forms.errors_at_fields("campaign 'x' exists", ["id"]) == {
        forms.FORM_ERROR: ["campaign 'x' exists"]
    }


def test_plan_weights_with_dots_in_their_names_get_their_errors() -> None:
    fields = forms.plan_fields(["content.click"])
    placed = forms.errors_at_fields([{"loc": ["body", "weights", "content.click"], "msg": "too big"}], fields)
    assert placed == {"weights.content.click": ["too big"]}


def test_a_plan_form_round_trips() -> None:
    plan = {
        "half_life_days": 14,
        "pct_scale": 30,
        "emit_min_pct_change": 5,
        "bands": {"medium": 30, "high": 60, "hot": 85},
        "weights": {"content.click": 4, "content.favorite": 8},
        "source_multipliers": {},
        "points": {"referral.made": 50},
        "growth": {},
        "levels": {"bronze": 0},
        "activity": {"active_7d_days": 7},
    }
    values = forms.plan_form(plan)
    posted = {k: [v] for k, v in values.items() if isinstance(v, str)}
    posted |= {f"weights.{k}": [v] for k, v in values["weights"].items()}
    posted["weights.content.click"] = ["5"]
    back, errors = forms.plan_of(posted, plan["weights"])
    assert errors == {}
    assert back["weights"] == {"content.click": "5", "content.favorite": "8"}
    assert back["bands"] == {"medium": "30", "high": "60", "hot": "85"}
    assert back["points"] == {"referral.made": 50}


def test_an_audience_becomes_segment_filters() -> None:
    audience = {
        "layers": ["intent"],
        "bands": ["hot", "high"],
        "tags_all": ["ripple"],
        "tags_none": ["recalled"],
    }
    assert forms.audience_filters(audience) == [
        ("layer", "intent"),
        ("band", "hot"),
        ("band", "high"),
        ("tag", "ripple"),
        ("not_tag", "recalled"),
    ]


def test_the_heatmap_is_the_matrix_hottest_first() -> None:
    matrix = {"cells": {"hot": {"active_7d": 3}, "low": {"dormant": 7, "active_30d": 1}}, "total": 11}
    shaped = views.heatmap(matrix, value_namer("en"))
    assert shaped["row_keys"] == ["hot", "high", "medium", "low"]
    assert shaped["counts"] == [[3, 0, 0], [0, 0, 0], [0, 0, 0], [0, 1, 7]]
    assert shaped["total"] == 11 and shaped["max"] == 7


def test_the_funnel_gives_each_step_its_share_of_the_one_before() -> None:
    steps = views.funnel(
        {"steps": [{"step": "friend_added", "customers": 200}, {"step": "lead", "customers": 50},
                   {"step": "test_drive", "customers": 0}, {"step": "order", "customers": 0}]},
        value_namer("zh-CN"),
    )  # fmt: skip
    assert [s["customers"] for s in steps] == [200, 50, 0, 0]
    assert [s["of_previous"] for s in steps] == [None, 0.25, 0.0, None]
    assert steps[1]["label"] == "留资"


def test_events_per_minute_put_the_busiest_source_first() -> None:
    shaped = views.events_per_minute(
        {
            "minutes": [
                {"at": "2026-12-01T10:15:00+00:00", "by_source": {"wecom": 2, "app": 1}},
                {"at": "2026-12-01T10:16:00+00:00", "by_source": {"wecom": 3}},
            ]
        }
    )
    assert shaped["labels"] == ["18:15", "18:16"]  # China time
    assert shaped["series"] == [{"name": "wecom", "counts": [2, 3]}, {"name": "app", "counts": [1, 0]}]
    assert shaped["total"] == 6


def test_actions_today_put_the_busiest_campaign_first() -> None:
    shaped = views.actions_today(
        {"date": "2026-12-01", "campaigns": {"a": {"sent": 1}, "b": {"sent": 2, "suppressed": 3}}},
        value_namer("en"),
    )
    assert shaped["campaigns"] == ["b", "a"]
    assert shaped["counts"] == [[2, 0, 3], [1, 0, 0]]


def test_times_are_shown_on_the_china_clock() -> None:
    assert views.china_time("2026-12-01T02:49:24Z") == "2026-12-01 10:49:24"
    assert views.china_time("2026-12-01T10:49:24+08:00") == "2026-12-01 10:49:24"
    assert views.china_time(None) == "—"
    assert views.china_time("not a time") == "not a time"


def test_a_journey_goes_through_the_form_and_its_page_shows_each_step() -> None:
    from services.campaign.examples import example_journeys
    from services.campaign.stats import stats_of

    journey = example_journeys()[0]
    steps = [step.model_dump(mode="json", exclude_none=True) for step in journey.steps]
    posted = {
        "id": [journey.id],
        "name": [journey.name],
        "trigger.on": ["event"],
        "trigger.value": ["wecom.friend_added"],
        "steps": [json.dumps(steps)],
    }
    definition, errors = forms.campaign_of(posted)
    assert not errors and "action" not in definition
    assert Campaign.model_validate(definition).steps == journey.steps
    assert json.loads(forms.campaign_form(journey.model_dump(mode="json"))["steps"]) == json.loads(
        json.dumps([step.model_dump(mode="json") for step in journey.steps])
    )
    _, refused = forms.campaign_of({"id": ["x"], "steps": ["[{oops"]})
    assert "not JSON" in refused["steps"][0]

    figures = {"step:welcome:reached": 9, "step:welcome:sent": 8, "step:clicked:then": 3}
    stats = stats_of(journey.id, figures, [s.name for s in journey.steps]).model_dump(mode="json")
    page = rendered(
        "campaign.html",
        campaign=journey.model_dump(mode="json"),
        stats=stats,
        groups=[],
        estimate=None,
        saved=False,
    )
    assert 'data-testid="steps-table"' in page and "Multi-step journey" in page
    assert "<td>welcome</td><td>9</td><td>8</td>" in page
    assert "2. clicked (branch)" in page
