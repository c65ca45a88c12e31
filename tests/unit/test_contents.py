"""The content catalogue (shared/contents.py) and what events add to contents' figures
(services/tagging/content_touches.py): pure, no broker."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.tagging.content_touches import ContentTouch, content_touches
from services.tagging.profile import RECENT_CONTENTS, Profile, merge_profiles
from shared.contents import Content, with_catalogue
from tests.unit.test_tagging_domain import LIMITS, NO_RULES, ingested, replay

SPEC = Content(content_id="c-spec", value_point="rational", topics=["tech", "range"], vehicle_model="G6")
OFFER = Content(content_id="c-offer", price_related=True)
CATALOGUE = {c.content_id: c for c in (SPEC, OFFER)}


def test_an_event_naming_only_a_content_takes_its_attributes() -> None:
    taken = with_catalogue({"content_id": "c-spec"}, CATALOGUE)
    assert taken == {
        "content_id": "c-spec",
        "value_point": "rational",
        "topics": ["tech", "range"],
        "vehicle_model": "G6",
    }
    assert with_catalogue({"content_id": "c-offer"}, CATALOGUE) == {
        "content_id": "c-offer",
        "price_related": True,
    }


def test_what_the_event_says_itself_wins_and_unknown_contents_change_nothing() -> None:
    own = {"content_id": "c-spec", "value_point": "emotional", "topics": ["family"]}
    assert with_catalogue(own, CATALOGUE) == own | {"vehicle_model": "G6"}
    unknown = {"content_id": "c-other"}
    assert with_catalogue(unknown, CATALOGUE) is unknown
    assert with_catalogue({"content_id": 7}, CATALOGUE) == {"content_id": 7}


@pytest.mark.parametrize(
    "bad",
    [{"value_point": "logical"}, {"topics": ["t"] * 21}, {"content_id": ""}, {"surprise": 1}],
)
def test_a_content_outside_the_contract_is_refused(bad: dict) -> None:
    with pytest.raises(ValidationError):
        Content.model_validate({"content_id": "c-1"} | bad)


def test_reach_clicks_and_conversions_credit_the_contents_engaged_with_before() -> None:
    before = Profile(customer_id="cus_1")
    click = ingested("content.click", content_id="c-spec")
    after = replay([click], before)
    assert content_touches(click, before, after) == [
        ContentTouch("c-spec", "reached", "cus_1"),
        ContentTouch("c-spec", "clicked", click.event_id),
    ]
    view = ingested("content.view", content_id="c-offer")
    later = replay([view], after)
    assert content_touches(view, after, later) == [ContentTouch("c-offer", "reached", "cus_1")]
    order = ingested("order.placed", vehicle_model="G6")
    assert content_touches(order, later, replay([order], later)) == [
        ContentTouch("c-spec", "converted", "cus_1"),
        ContentTouch("c-offer", "converted", "cus_1"),
    ]
    consent = ingested("consent.granted", channel="sms", content_id="c-new")  # not engagement
    assert content_touches(consent, later, replay([consent], later)) == []


def test_a_customer_keeps_the_latest_contents_only_and_a_merge_keeps_both_latest_last() -> None:
    views = [ingested("content.view", content_id=f"c-{n}") for n in range(RECENT_CONTENTS + 5)]
    profile = replay([*views, ingested("content.view", content_id="c-3")])
    assert len(profile.recent_contents) == RECENT_CONTENTS and profile.recent_contents[-1] == "c-3"
    other = replay([ingested("content.view", content_id="c-x")])
    merged = merge_profiles(other, profile, LIMITS, NO_RULES)
    assert merged.recent_contents[-1] == "c-x" and len(merged.recent_contents) == RECENT_CONTENTS
