from datetime import UTC, datetime, timedelta

import pytest

from shared.events import EVENT_TYPES, IngestedEvent, InvalidEvent, validate_event, validate_events
from tests.factories import event


def now() -> datetime:
    """The time of the check: events from the factory are stamped when a test makes them, and a
    module-level constant would fall behind them in a long test session."""
    return datetime.now(UTC)


def errors_of(raw: dict) -> list[tuple[tuple, str]]:
    with pytest.raises(InvalidEvent) as caught:
        validate_event(raw, now())
    return [(tuple(e["loc"]), e["type"]) for e in caught.value.errors]


def test_the_contract_example_is_valid() -> None:
    raw = {
        "event_id": "7d1f2c5e-0b7a-4f7e-9a57-1f2d3c4b5a69",
        "type": "content.click",
        "source": "wecom",
        "occurred_at": "2026-11-25T10:15:00+08:00",
        "identities": {"wecom_external_userid": "wmXyz", "unionid": "o6_bmj..."},
        "properties": {
            "content_id": "c-spec-001",
            "value_point": "rational",
            "topics": ["tech"],
            "vehicle_model": "id4",
        },
        "schema_version": 1,
    }
    parsed = validate_event(raw, now())
    assert parsed.type == "content.click"
    assert parsed.occurred_at.utcoffset() == timedelta(hours=8)


@pytest.mark.parametrize(("event_type", "required"), [(t, r) for t, r in EVENT_TYPES.items() if r])
def test_each_type_requires_its_properties(event_type: str, required: tuple[str, ...]) -> None:
    assert (("properties", required[0]), "missing") in errors_of(event(type=event_type, properties={}))


def test_types_without_required_properties_need_none() -> None:
    for event_type, required in EVENT_TYPES.items():
        if not required:
            validate_event(event(type=event_type, properties={}), now())


def test_custom_types_take_free_properties_and_unknown_types_are_rejected() -> None:
    validate_event(event(type="custom.nft_claimed", properties={"anything": [1, 2]}), now())
    assert errors_of(event(type="content.clicked")) == [(("type",), "value_error")]
    assert errors_of(event(type="custom.")) == [(("type",), "value_error")]


@pytest.mark.parametrize(
    ("properties", "loc"),
    [
        ({"content_id": "c1", "value_point": "spiritual"}, ("properties", "value_point")),
        ({"content_id": "c1", "topics": "tech"}, ("properties", "topics")),
        ({"content_id": "c1", "price_related": "maybe"}, ("properties", "price_related")),
        ({"content_id": ""}, ("properties", "content_id")),
    ],
)
def test_known_properties_are_type_checked(properties: dict, loc: tuple) -> None:
    assert loc in [loc for loc, _ in errors_of(event(properties=properties))]


def test_amounts_and_durations_are_non_negative_numbers() -> None:
    assert (("properties", "amount"), "greater_than_equal") in errors_of(
        event(type="mall.purchase", properties={"amount": -1})
    )
    validate_event(event(type="live.watch", properties={"duration_s": 0}), now())


def test_envelope_errors_are_field_level() -> None:
    found = errors_of(
        event(event_id="nope", source="tiktok", occurred_at="2026-11-25T10:15:00", identities={})
    )
    assert {loc for loc, _ in found} == {("event_id",), ("source",), ("occurred_at",), ("identities",)}


def test_unknown_identity_types_and_top_level_fields_are_rejected() -> None:
    assert (("identities", "email", "[key]"), "enum") in errors_of(event(identities={"email": "a@b.c"}))
    assert (("surprise",), "extra_forbidden") in errors_of(event(surprise=1))
    assert (("schema_version",), "literal_error") in errors_of(event(schema_version=2))


def test_occurred_at_may_be_up_to_five_minutes_ahead() -> None:
    validate_event(event(occurred_at=(now() + timedelta(minutes=4)).isoformat()), now())
    assert errors_of(event(occurred_at=(now() + timedelta(minutes=6)).isoformat())) == [
        (("occurred_at",), "future")
    ]


def test_ingested_event_round_trips_through_json() -> None:
    parsed = validate_event(event(), now())
    record = IngestedEvent(**parsed.model_dump(), customer_id="cus_1", received_at=now(), api_key_id="key_x")
    assert IngestedEvent.model_validate_json(record.model_dump_json()) == record


def test_a_batch_gives_each_event_its_own_outcome() -> None:
    good, other = event(), event()
    late = event(occurred_at=(now() + timedelta(hours=1)).isoformat())
    misspelt = {**event(), "source": "nowhere"}
    all_valid = validate_events([good, other], now())
    assert [str(e.event_id) for e in all_valid] == [good["event_id"], other["event_id"]]

    outcomes = validate_events([good, late, misspelt], now())
    assert str(outcomes[0].event_id) == good["event_id"]
    assert [e["type"] for e in outcomes[1].errors] == ["future"]
    assert [e["loc"] for e in outcomes[2].errors] == [["source"]]


@pytest.mark.parametrize("event_type", ["consent.granted", "consent.revoked"])
def test_a_consent_for_an_unknown_channel_is_refused(event_type: str) -> None:
    assert errors_of(event(type=event_type, properties={"channel": "phone"})) == [
        (("properties", "channel"), "unknown_channel")
    ]
    assert errors_of(event(type=event_type, properties={"channel": "dealer"})) == [  # not a message
        (("properties", "channel"), "unknown_channel")
    ]
    for channel in ("sms", " WeCom ", "all", "App_Push"):  # compared as the campaign worker reads them
        validate_event(event(type=event_type, properties={"channel": channel}), now())
    # Other events may carry a `channel` of their own meaning (e.g. where a friendship began).
    validate_event(event(type="wecom.friend_added", properties={"channel": "ad_qr"}), now())


def test_a_batch_rejects_only_the_consent_for_an_unknown_channel() -> None:
    good = event(type="consent.revoked", properties={"channel": "all"})
    bad = event(type="consent.granted", properties={"channel": "fax"})
    outcomes = validate_events([good, bad], now())
    assert str(outcomes[0].event_id) == good["event_id"]
    assert isinstance(outcomes[1], InvalidEvent)
    assert [(e["loc"], e["type"]) for e in outcomes[1].errors] == [
        (["properties", "channel"], "unknown_channel")
    ]
