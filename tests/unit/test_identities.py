import random

import phonenumbers
import pytest

from services.ingest.identities import (
    api_key_id,
    hash_phone,
    normalise_phone,
    phone_identity,
    protect_event,
)
from shared.events import InvalidEvent, TouchpointEvent
from tests.factories import event


@pytest.mark.parametrize("raw", ["13800138000", "138 0013 8000", "+86 138-0013-8000", "+8613800138000"])
def test_chinese_mobiles_normalise_to_e164_with_86_by_default(raw: str) -> None:
    assert normalise_phone(raw) == "+8613800138000"


def test_foreign_numbers_keep_their_country() -> None:
    assert normalise_phone("+49 30 901820") == "+4930901820"


@pytest.mark.parametrize("raw", ["123", "not a phone", "", "+86 1"])
def test_invalid_numbers_are_refused(raw: str) -> None:
    with pytest.raises(ValueError):
        normalise_phone(raw)


def test_the_chinese_mobile_shortcut_agrees_with_the_phone_library() -> None:
    rng = random.Random(3)
    spellings = [
        f"{prefix}1{rng.randrange(10**10):010d}" for prefix in ("", "+86", "+86 ") for _ in range(1_500)
    ] + ["138-0013-8000", "+86 138 0013 8000", "1380013800", "154 0000 0000", "+8617000000000"]
    for raw in spellings:
        try:
            library = phonenumbers.parse(raw, "CN")
            expected = (
                phonenumbers.format_number(library, phonenumbers.PhoneNumberFormat.E164)
                if phonenumbers.is_valid_number(library)
                else None
            )
        except phonenumbers.NumberParseException:
            expected = None
        try:
            assert normalise_phone(raw) == expected, raw
        except ValueError:
            assert expected is None, raw


def test_hash_is_salted_sha256_hex() -> None:
    digest = hash_phone("+8613800138000", "salt-a")
    assert len(digest) == 64 and int(digest, 16) >= 0
    assert digest == hash_phone("+8613800138000", "salt-a")
    assert digest != hash_phone("+8613800138000", "salt-b")
    assert "13800138000" not in digest


def test_every_spelling_of_a_number_is_one_identity_and_a_hash_passes_through() -> None:
    hashed = phone_identity("138 0013 8000", "s")
    assert phone_identity("+86 13800138000", "s") == hashed
    assert phone_identity(hashed, "s") == hashed


def test_protect_event_hashes_phone_identities_and_phone_properties() -> None:
    raw = event(
        type="ad.lead_form",
        identities={"phone": "13800138000", "unionid": "u1"},
        properties={"mobile": "13900139000", "campaign": "spring"},
    )
    dumped = TouchpointEvent.model_validate(raw).model_dump(mode="json")
    identities, properties = protect_event(dumped["identities"], dumped["properties"], "s")
    assert identities["phone"] == phone_identity("13800138000", "s")
    assert identities["unionid"] == "u1"
    assert properties == {"mobile": phone_identity("13900139000", "s"), "campaign": "spring"}
    assert "13800138000" not in repr((identities, properties))


def test_protect_event_reports_bad_phones_by_field() -> None:
    raw = event(identities={"phone": "12"}, properties={"content_id": "c", "phone": 5})
    with pytest.raises(InvalidEvent) as caught:
        protect_event(raw["identities"], raw["properties"], "s")
    assert [e["loc"] for e in caught.value.errors] == [["identities", "phone"], ["properties", "phone"]]


def test_api_key_id_names_a_key_without_revealing_it() -> None:
    assert api_key_id("local-touchpoint-key") == api_key_id("local-touchpoint-key")
    assert "touchpoint" not in api_key_id("local-touchpoint-key")
    assert api_key_id("a") != api_key_id("b")


# --- phones wherever they hide (docs/ingest.md, "Phones") -----------------------------------

SPELLINGS = [
    "13812345678",
    "138 1234 5678",
    "138-1234-5678",
    "+86 138 1234 5678",
    "+8613812345678",
    "8613812345678",
    "0086 13812345678",
]
DIGITS = "13812345678"


def digits_only(value: object) -> str:
    return "".join(c for c in repr(value) if c.isdigit())


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_a_phone_anywhere_in_properties_becomes_its_hash(spelling: str) -> None:
    hashed = phone_identity(DIGITS, "s")
    properties = {
        "Tel": spelling,
        "contact": {
            "Phone": spelling,
            "note": f"call me at {spelling} after six",
            "alt": [spelling, 13812345678],
        },
        "comment": f"我的手机{spelling}，谢谢",
        "lookup": {spelling: "a phone as a key"},
        "content_id": "c-spec-compare",
        "amount": 250000,
    }
    identities, protected = protect_event(
        {"app_user_id": spelling, "unionid": "u1"}, properties, "s", event_type="custom.lead"
    )
    assert DIGITS not in digits_only((identities, protected)).replace(hashed, "")
    assert identities == {"app_user_id": hashed, "unionid": "u1"}
    assert protected["Tel"] == hashed and protected["contact"]["Phone"] == hashed
    assert protected["contact"]["alt"] == [hashed, hashed]
    assert protected["contact"]["note"] == f"call me at phone:{hashed} after six"
    assert protected["comment"] == f"我的手机phone:{hashed}，谢谢"
    assert protected["lookup"] == {hashed: "a phone as a key"}
    assert (protected["content_id"], protected["amount"]) == ("c-spec-compare", 250000)


def test_ids_amounts_and_uuids_are_no_phones() -> None:
    untouched = {
        "action_id": "6f1c3e0a-5b8e-4d7a-9c41-2f6b8a0d9e17",
        "order_no": "SO-20261201-000123",
        "amount": 13812345678.5,
        "vin": "LSVAU2180N2183456",
        "duration_s": 1380,
        "code": "12345678901234",
        "flag": True,
    }
    assert protect_event({"unionid": "o13812345678x"}, untouched, "s") == (
        {"unionid": "o13812345678x"},
        untouched,
    )


def test_a_phone_named_property_must_be_a_phone_and_landlines_count() -> None:
    _, protected = protect_event({"unionid": "u"}, {"contact": {"tel": "010-8888 6666"}}, "s")
    assert protected["contact"]["tel"] == phone_identity("+861088886666", "s")
    with pytest.raises(InvalidEvent) as caught:
        protect_event({"unionid": "u"}, {"contact": {"mobile": "n/a"}}, "s")
    assert [e["loc"] for e in caught.value.errors] == [["properties", "contact", "mobile"]]


def test_a_custom_type_holding_a_phone_is_refused() -> None:
    with pytest.raises(InvalidEvent) as caught:
        protect_event({"unionid": "u"}, {}, "s", event_type="custom.call_13812345678")
    assert caught.value.errors[0]["loc"] == ["type"]


def test_a_hash_with_a_trailing_newline_is_no_hash() -> None:
    hashed = phone_identity(DIGITS, "s")
    with pytest.raises(ValueError):
        phone_identity(hashed + "\n", "s")
