"""What the sender does with a campaign action, and what WeCom's answers mean. Pure.

Only actions that went out (`sent`) on WeCom are the sender's: `send_content` on `wecom_1v1`
becomes a message task (`add_msg_template`, chat_type `single`) for the consultant who added the
customer, with a link to the content; `invite_group` the same with the QR code of a join way
(`groupchat/add_join_way`, scene 2) to the group template's customer groups. Everything else on
`campaign.actions.v1` is someone else's (dealer tasks, points, other channels).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

WECOM_KINDS = frozenset({("send_content", "wecom_1v1"), ("invite_group", "wecom_group")})
# WeCom's error codes (开发者中心, 全局错误码) by what to do about them.
TOKEN_ERRORS = frozenset({40014, 42001, 41001})  # invalid, expired or missing access_token: get another
RETRIABLE_ERRORS = frozenset({-1, 45009, 45033, 45035, 45011})  # busy, rate and concurrency limits
Verdict = Literal["ok", "token", "retry", "permanent"]


class CampaignAction(BaseModel):
    """An action on `campaign.actions.v1`, as far as the sender reads it (docs/contract.md)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    action_id: str
    campaign_id: str
    customer_id: str
    kind: str
    channel: str
    content_id: str | None = None
    group_template: str | None = None  # invite_group
    outcome: str
    at: datetime


@dataclass(frozen=True)
class Contact:
    external_userid: str
    consultant: str  # the WeCom user who added the customer: the task's sender


def is_ours(action: CampaignAction) -> bool:
    return action.outcome == "sent" and (action.kind, action.channel) in WECOM_KINDS


def message_task(action: CampaignAction, contact: Contact, link: str) -> dict[str, Any]:
    """The `add_msg_template` body: one customer, sent by their consultant, linking `link`."""
    return {
        "chat_type": "single",
        "external_userid": [contact.external_userid],
        "sender": contact.consultant,
        "text": {"content": ""},
        "attachments": [
            {
                "msgtype": "link",
                "link": {"title": action.content_id or action.campaign_id, "url": link},
            }
        ],
    }


def join_way(template: str, chat_ids: list[str]) -> dict[str, Any]:
    """The `groupchat/add_join_way` body: a QR code into the template's groups, a new group of
    the same name opened when they are full."""
    return {
        "scene": 2,
        "remark": template[:30],
        "auto_create_room": 1,
        "room_base_name": template[:40],
        "room_base_id": 1,
        "chat_id_list": chat_ids[:5],
        "state": template[:30],
    }


def verdict(errcode: int) -> Verdict:
    if errcode == 0:
        return "ok"
    if errcode in TOKEN_ERRORS:
        return "token"
    if errcode in RETRIABLE_ERRORS:
        return "retry"
    return "permanent"
