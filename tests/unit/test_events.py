from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.events import (
    EVENT_TYPES,
    MAX_BOUND_ERRORS,
    MAX_KEY_CHARS,
    MAX_LIST_ITEMS,
    MAX_OBJECT_KEYS,
    MAX_PROPERTY_DEPTH,
    MAX_STRING_CHARS,
    MAX_TOPICS,
    IngestedEvent,
    InvalidEvent,
    _flat_and_within,
    _walk_bounds,
    describe_errors,
    property_bound_errors,
    validate_event,
    validate_events,
)
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


def test_occurred_at_may_be_up_to_ten_years_ago_not_year_one() -> None:
    validate_event(event(occurred_at=(now() - timedelta(days=9 * 365)).isoformat()), now())
    for long_ago in ("0001-01-01T00:00:00+00:00", "1970-01-01T00:00:00+00:00"):
        assert errors_of(event(occurred_at=long_ago)) == [(("occurred_at",), "too_old")]


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


def nested(levels: int, leaf: object = 1) -> object:
    """`levels` containers, objects and lists in turn, around `leaf` (built without recursion)."""
    value = leaf
    for level in range(levels):
        value = {"a": value} if level % 2 else [value]
    return value


@pytest.mark.parametrize("levels", [MAX_PROPERTY_DEPTH + 1, 400, 100_000])
def test_properties_nested_too_deep_are_refused_at_the_first_level_past_the_bound(levels: int) -> None:
    [(loc, kind)] = errors_of(event(properties={"content_id": "c", "form": nested(levels)}))
    assert kind == "too_deep"
    assert loc[:2] == ("properties", "form") and len(loc) == 2 + MAX_PROPERTY_DEPTH


def test_properties_as_deep_as_the_bound_are_valid() -> None:
    validate_event(event(properties={"content_id": "c", "form": nested(MAX_PROPERTY_DEPTH)}), now())


def test_an_event_within_the_bounds_always_serialises() -> None:
    """orjson writes at most 254 levels: the depth bound keeps every valid event far below."""
    import orjson

    raw = event(properties={"content_id": "c", "form": nested(MAX_PROPERTY_DEPTH)})
    assert orjson.loads(orjson.dumps(validate_event(raw, now()).model_dump(mode="json")))


@pytest.mark.parametrize(
    ("properties", "loc", "kind"),
    [
        ({"cart": list(range(MAX_LIST_ITEMS + 1))}, ("properties", "cart"), "too_many_items"),
        ({f"k{n}": n for n in range(MAX_OBJECT_KEYS + 1)}, ("properties",), "too_many_keys"),
        ({"form": {f"k{n}": n for n in range(MAX_OBJECT_KEYS + 1)}}, ("properties", "form"), "too_many_keys"),
        ({"note": "x" * (MAX_STRING_CHARS + 1)}, ("properties", "note"), "string_too_long"),
        (
            {"lines": [{"sku": "x" * (MAX_STRING_CHARS + 1)}]},
            ("properties", "lines", 0, "sku"),
            "string_too_long",
        ),
        ({"k" * (MAX_KEY_CHARS + 1): 1}, ("properties", "k" * MAX_KEY_CHARS + "…"), "key_too_long"),
        (
            {"content_id": "c", "topics": [f"t{n}" for n in range(MAX_TOPICS + 1)]},
            ("properties", "topics"),
            "too_long",
        ),
    ],
)
def test_lists_objects_keys_strings_and_topics_are_capped(properties: dict, loc: tuple, kind: str) -> None:
    assert (loc, kind) in errors_of(event(type="custom.bounds", properties=properties))


def test_values_at_the_bounds_are_valid() -> None:
    properties = {
        "cart": list(range(MAX_LIST_ITEMS)),
        "note": "x" * MAX_STRING_CHARS,
        "k" * MAX_KEY_CHARS: 1,
        "topics": [f"t{n}" for n in range(MAX_TOPICS)],
        **{f"k{n}": n for n in range(MAX_OBJECT_KEYS - 4)},
    }
    validate_event(event(type="custom.bounds", properties=properties), now())


def test_bound_errors_are_few_however_many_values_break_them() -> None:
    properties = {"lines": [{"note": "x" * (MAX_STRING_CHARS + 1)} for _ in range(MAX_LIST_ITEMS)]}
    found = errors_of(event(type="custom.bounds", properties=properties))
    assert len(found) == MAX_BOUND_ERRORS
    assert {kind for _, kind in found} == {"string_too_long"}


def test_property_bound_errors_takes_any_json_value() -> None:
    assert property_bound_errors({}) == []
    assert property_bound_errors("x" * (MAX_STRING_CHARS + 1))[0]["loc"] == ["properties"]
    assert property_bound_errors(nested(10_000))[0]["type"] == "too_deep"


def test_an_event_nested_400_levels_deep_is_rejected_alone_in_a_batch() -> None:
    good, other = event(), event()
    deep = event(type="custom.deep", properties={"x": nested(400)})
    outcomes = validate_events([good, deep, other], now())
    assert [str(outcomes[i].event_id) for i in (0, 2)] == [good["event_id"], other["event_id"]]
    assert isinstance(outcomes[1], InvalidEvent)
    assert [e["type"] for e in outcomes[1].errors] == ["too_deep"]


def test_property_bound_errors_counts_topics_as_ingests_model_does() -> None:
    errors = property_bound_errors({"topics": ["t"] * (MAX_TOPICS + 1)})
    assert [(e["loc"], e["type"]) for e in errors] == [(["properties", "topics"], "too_long")]
    assert property_bound_errors({"topics": ["t"] * 3_800}) == errors  # said once
    assert describe_errors(errors) == f"properties.topics: at most {MAX_TOPICS} topics (too_long)"


def test_a_worker_checks_the_shape_alone_of_an_event_as_published() -> None:
    """Phone hashes make strings and keys longer than sent: only depth, items, keys and topics
    are what they were at ingest."""
    grown = {"note": "x" * (MAX_STRING_CHARS * 6), "k" * (MAX_KEY_CHARS * 2): 1}
    assert property_bound_errors(grown, lengths=False) == []
    assert sorted(e["type"] for e in property_bound_errors(grown)) == ["key_too_long", "string_too_long"]
    assert (
        property_bound_errors({"form": nested(MAX_PROPERTY_DEPTH + 1)}, lengths=False)[0]["type"]
        == "too_deep"
    )


_TEXTS = st.sampled_from(["", "id4", "x" * MAX_STRING_CHARS, "x" * (MAX_STRING_CHARS + 1)])
_KEYS = st.sampled_from(["topics", "amount", "k" * MAX_KEY_CHARS, "k" * (MAX_KEY_CHARS + 1)])
_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _TEXTS
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=MAX_TOPICS + 2) | st.dictionaries(_KEYS, inner, max_size=4),
    max_leaves=30,
)
_TOPICS_NEAR_BOUND = st.fixed_dictionaries(
    {"topics": st.lists(_SCALARS, min_size=MAX_TOPICS - 1, max_size=MAX_TOPICS + 2)}
)


@settings(max_examples=300, deadline=None)
@given(
    properties=st.dictionaries(_KEYS, _JSON, max_size=4) | _TOPICS_NEAR_BOUND | _JSON, lengths=st.booleans()
)
def test_the_quick_look_at_flat_properties_agrees_with_the_walk(properties: object, lengths: bool) -> None:
    """Flat properties are passed by one look at each value; whatever it passes, the walk that
    names each broken bound passes too."""
    if _flat_and_within(properties, lengths):
        assert _walk_bounds(properties, lengths) == []
    assert property_bound_errors(properties, lengths=lengths) == _walk_bounds(properties, lengths)


def test_the_quick_look_passes_the_usual_event_and_leaves_the_rest_to_the_walk() -> None:
    usual = {"content_id": "c-001", "topics": ["tech", "price"], "price_related": True, "amount": 120.5}
    assert _flat_and_within(usual, lengths=True)
    assert not _flat_and_within({"topics": ["t"] * (MAX_TOPICS + 1)}, lengths=True)
    assert not _flat_and_within({"form": {"a": 1}}, lengths=True)
    assert not _flat_and_within({"note": "x" * (MAX_STRING_CHARS + 1)}, lengths=True)
    assert _flat_and_within({"note": "x" * (MAX_STRING_CHARS + 1)}, lengths=False)
