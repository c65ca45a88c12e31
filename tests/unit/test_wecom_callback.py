"""WeCom's callback protocol (services/ingest/wecom_crypto.py) against an independent peer,
wechatpy's WeCom crypto, and callbacks as events (wecom_events.py). Pure."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ElementTree

import pytest
from pydantic import ValidationError
from wechatpy.enterprise.crypto import WeChatCrypto

from services.ingest.settings import WeComCallback
from services.ingest.wecom_crypto import CallbackRefused, CorpKeys, decrypt, encrypt, signature, signed_by
from services.ingest.wecom_events import events_of, parse
from tests.conftest import WECOM_CORP
from tests.wecom_peer import contact_added, group_members_changed

CORP = CorpKeys(**WECOM_CORP)
PEER = WeChatCrypto(CORP.token, CORP.encoding_aes_key, CORP.corp_id)


def encrypted_by_peer(message: str, nonce: str = "n-1", timestamp: str = "1764500000") -> tuple[str, str]:
    envelope = ElementTree.fromstring(PEER.encrypt_message(message, nonce, timestamp))
    return envelope.findtext("Encrypt") or "", envelope.findtext("MsgSignature") or ""


def test_what_the_peer_signs_and_encrypts_verifies_and_decrypts() -> None:
    message = contact_added("wm-1", "li", at=1764500000)
    ciphertext, msg_signature = encrypted_by_peer(message)
    assert signature(CORP.token, "1764500000", "n-1", ciphertext) == msg_signature
    assert signed_by(CORP, msg_signature.upper(), "1764500000", "n-1", ciphertext)
    assert not signed_by(CORP, msg_signature, "1764500001", "n-1", ciphertext)
    assert decrypt(CORP, ciphertext) == message
    # And the other way: the peer decrypts what we encrypt (the local fake WeCom's callbacks).
    ours = encrypt(CORP, message, os.urandom(16))
    xml = f"<xml><Encrypt><![CDATA[{ours}]]></Encrypt></xml>"
    assert PEER.decrypt_message(xml, signature(CORP.token, "1", "n", ours), "1", "n") == message


def test_a_message_for_another_corp_or_tampered_does_not_decrypt() -> None:
    other = WeChatCrypto(CORP.token, CORP.encoding_aes_key, "wwsomeoneelse0001")
    envelope = ElementTree.fromstring(other.encrypt_message("<xml/>", "n", "1"))
    with pytest.raises(CallbackRefused) as refused:
        decrypt(CORP, envelope.findtext("Encrypt") or "")
    assert refused.value.reason == "wrong_corp"
    ciphertext, msg_signature = encrypted_by_peer("<xml/>")
    assert not signed_by(
        CORP, "\x80" + msg_signature[1:], "1764500000", "n-1", ciphertext
    )  # found by fuzzing
    for broken in ("not base64!", ciphertext[:-8] + "AAAAAAA=", "QUJD", "", "\x80abc"):
        with pytest.raises(CallbackRefused) as refused:
            decrypt(CORP, broken)
        assert refused.value.reason in ("malformed", "wrong_corp")


def test_an_add_external_contact_is_a_wecom_friend_with_consultant_and_channel_code() -> None:
    message = parse(contact_added("wm-1", "li", state="store-sh-01", at=1764500000))
    (event,) = events_of(message, CORP.corp_id)
    assert event["type"] == "wecom.friend_added" and event["source"] == "wecom"
    assert event["identities"] == {"wecom_external_userid": "wm-1"}
    assert event["properties"] == {"consultant_id": "li", "channel_code": "store-sh-01"}
    assert event["occurred_at"] == "2025-11-30T10:53:20+00:00"
    # The same callback again (WeCom's retry): the same event id; another contact: another.
    assert events_of(
        parse(contact_added("wm-1", "li", state="store-sh-01", at=1764500000)), CORP.corp_id
    ) == [event]
    other = events_of(parse(contact_added("wm-2", "li", state="store-sh-01", at=1764500000)), CORP.corp_id)
    assert other[0]["event_id"] != event["event_id"]


@pytest.mark.parametrize(
    ("change", "event_type", "removed_by"),
    [
        ("del_external_contact", "wecom.friend_deleted", "consultant"),
        ("del_follow_user", "wecom.friend_deleted", "customer"),
        ("edit_external_contact", "wecom.contact_updated", None),
        ("transfer_fail", None, None),
    ],
)
def test_contact_changes_map_to_their_events(
    change: str, event_type: str | None, removed_by: str | None
) -> None:
    message = parse(contact_added("wm-1", "li", at=1764500000).replace("add_external_contact", change))
    events = events_of(message, CORP.corp_id)
    assert [e["type"] for e in events] == ([event_type] if event_type else [])
    if events:
        assert events[0]["properties"].get("removed_by") == removed_by


def test_a_group_change_is_one_event_per_external_member() -> None:
    joined = parse(
        group_members_changed("wr-1", "add_member", ["wm-1", "wo-2", "staff-zhang"], at=1764500000)
    )
    events = events_of(joined, CORP.corp_id)
    assert [(e["type"], e["identities"]["wecom_external_userid"]) for e in events] == [
        ("wecom.group_joined", "wm-1"),
        ("wecom.group_joined", "wo-2"),
    ]
    assert events[0]["properties"] == {"chat_id": "wr-1", "join_scene": "1"}
    assert len({e["event_id"] for e in events}) == 2
    left = parse(group_members_changed("wr-1", "del_member", ["wm-1"], at=1764500000))
    assert [e["type"] for e in events_of(left, CORP.corp_id)] == ["wecom.group_left"]
    assert events_of(parse("<xml><MsgType>text</MsgType></xml>"), CORP.corp_id) == []


def test_a_callback_with_a_document_type_or_not_xml_is_refused() -> None:
    bomb = '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><xml>&a;</xml>'
    for text in (bomb, "<xml><unclosed></xml>"):
        with pytest.raises(CallbackRefused):
            parse(text)
    undated = parse(contact_added("wm-1", "li").replace("<CreateTime>", "<CreateTime>soon"))
    with pytest.raises(CallbackRefused):
        events_of(undated, CORP.corp_id)


def test_a_corps_encoding_aes_key_must_decode_to_32_bytes() -> None:
    assert WeComCallback(**WECOM_CORP).keys() == CORP
    with pytest.raises(ValidationError, match="43 characters"):
        WeComCallback(**(WECOM_CORP | {"encoding_aes_key": "!" * 43}))
