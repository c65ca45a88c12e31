"""WeCom's external-contact and customer-group callbacks as events (docs/wecom.md). Pure.

- `change_external_contact`: `add_external_contact` and `add_half_external_contact` ->
  `wecom.friend_added`; `del_external_contact` (the consultant removed the customer) and
  `del_follow_user` (the customer removed the consultant) -> `wecom.friend_deleted`;
  `edit_external_contact` -> `wecom.contact_updated`.
- `change_external_chat` `update` with `UpdateDetail` `add_member` / `del_member` ->
  `wecom.group_joined` / `wecom.group_left`, one per external member in `MemChangeList`.

The customer is the `ExternalUserID` (`wecom_external_userid`); the consultant (`UserID`) and
the `State` code of the contact way that brought them (an ad, a QR code, a store) go in the
properties. WeCom callbacks carry no event id and WeCom retries a callback it got no answer to:
the id is derived from the callback's content, so a retry is the same event (a duplicate).
Other callbacks (internal staff, messages, tags) make no event.
"""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ElementTree
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from .wecom_crypto import CallbackRefused

EVENT_IDS = uuid.UUID("2b0f7a8e-6c1d-4e55-9a3b-7d2e4c9f1a60")
MAX_MEMBERS = 200  # a group holds 500 at most; one callback names far fewer
Message = Mapping[str, Any]  # child tag -> text; `MemChangeList` -> its items


def parse(xml: str) -> dict[str, Any]:
    """A callback's XML as {tag: text}, one level deep (`MemChangeList`: the list of its items).
    No DTD: WeCom never sends one, and entities are the usual way to make a parser blow up."""
    if "<!DOCTYPE" in xml or "<!ENTITY" in xml:
        raise CallbackRefused("malformed", "a document type declaration in a callback")
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError as error:
        raise CallbackRefused("malformed", f"not XML: {error}") from None
    fields: dict[str, Any] = {}
    for child in root:
        if child.tag == "MemChangeList":
            fields[child.tag] = [(item.text or "").strip() for item in child][:MAX_MEMBERS]
        else:
            fields[child.tag] = (child.text or "").strip()
    return fields


def events_of(message: Message, corp_id: str) -> list[dict[str, Any]]:
    """The events a decrypted callback makes, as a touchpoint would post them."""
    if message.get("MsgType") != "event":
        return []
    kind, change = message.get("Event"), message.get("ChangeType")
    if kind == "change_external_contact":
        contact = message.get("ExternalUserID", "")
        event_type = {
            "add_external_contact": "wecom.friend_added",
            "add_half_external_contact": "wecom.friend_added",
            "del_external_contact": "wecom.friend_deleted",
            "del_follow_user": "wecom.friend_deleted",
            "edit_external_contact": "wecom.contact_updated",
        }.get(str(change))
        if event_type is None or not contact:
            return []
        properties = _present(
            consultant_id=message.get("UserID"),
            channel_code=message.get("State"),
            removed_by={"del_external_contact": "consultant", "del_follow_user": "customer"}.get(str(change)),
        )
        return [_event(message, corp_id, event_type, contact, properties)]
    if kind == "change_external_chat" and change == "update":
        event_type = {"add_member": "wecom.group_joined", "del_member": "wecom.group_left"}.get(
            str(message.get("UpdateDetail"))
        )
        if event_type is None:
            return []
        properties = _present(
            chat_id=message.get("ChatId"),
            join_scene=message.get("JoinScene"),
            quit_scene=message.get("QuitScene"),
        )
        members = [m for m in message.get("MemChangeList", []) if _external(m)]
        return [_event(message, corp_id, event_type, member, properties) for member in members]
    return []


def _event(
    message: Message, corp_id: str, event_type: str, contact: str, properties: dict[str, str]
) -> dict[str, Any]:
    # The same callback (WeCom's retry) -> the same id; each member of a group change its own.
    content = orjson.dumps([corp_id, sorted(message.items()), contact], option=orjson.OPT_NON_STR_KEYS)
    return {
        "event_id": str(uuid.uuid5(EVENT_IDS, content.decode())),
        "type": event_type,
        "source": "wecom",
        "occurred_at": _when(message.get("CreateTime")),
        "identities": {"wecom_external_userid": contact},
        "properties": properties,
        "schema_version": 1,
    }


def _when(create_time: object) -> str:
    try:
        return datetime.fromtimestamp(int(str(create_time)), UTC).isoformat()
    except (TypeError, ValueError, OverflowError, OSError):
        raise CallbackRefused("malformed", "CreateTime is not a time") from None


def _present(**values: object) -> dict[str, str]:
    return {name: value for name, value in values.items() if isinstance(value, str) and value}


def _external(member: str) -> bool:
    """External contacts' ids start with `wm` or `wo`; the brand's own staff are users."""
    return member.startswith(("wm", "wo"))
