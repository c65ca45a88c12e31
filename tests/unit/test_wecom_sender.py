"""The WeCom sender's pure parts: which actions are WeCom's, the message task, WeCom's error
codes, and the client's token and error handling against a hand-written WeCom (httpx's
MockTransport)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from services.wecom_sender.client import WeComClient, WeComError
from services.wecom_sender.delivery import CampaignAction, Contact, is_ours, join_way, message_task, verdict


def action(**changes: Any) -> CampaignAction:
    base = {
        "action_id": "a-1",
        "campaign_id": "c-1",
        "customer_id": "cus_1",
        "kind": "send_content",
        "channel": "wecom_1v1",
        "content_id": "c-g6",
        "outcome": "sent",
        "at": datetime(2026, 12, 1, tzinfo=UTC),
    }
    return CampaignAction.model_validate(base | changes)


def test_only_sent_wecom_messages_and_invitations_are_the_senders() -> None:
    assert is_ours(action()) and is_ours(action(kind="invite_group", channel="wecom_group"))
    assert not is_ours(action(outcome="suppressed"))
    assert not is_ours(action(kind="assign_dealer", channel="dealer"))
    assert not is_ours(action(channel="sms"))


def test_a_message_task_is_for_one_customer_from_their_consultant() -> None:
    task = message_task(action(), Contact("wm-1", "li"), "https://brand.test/c/c-g6")
    assert (task["chat_type"], task["external_userid"], task["sender"]) == ("single", ["wm-1"], "li")
    assert task["attachments"] == [
        {"msgtype": "link", "link": {"title": "c-g6", "url": "https://brand.test/c/c-g6"}}
    ]


def test_wecoms_error_codes_say_what_to_do() -> None:
    assert [verdict(code) for code in (0, 42001, 40014, -1, 45009, 40003, 84061)] == [
        "ok", "token", "token", "retry", "retry", "permanent", "permanent",
    ]  # fmt: skip


class FakeWeCom:
    """WeCom's token and message endpoints; `answers` are what the message endpoint says, in turn."""

    def __init__(self, answers: list[dict[str, Any]]) -> None:
        self.answers = answers
        self.tokens_issued = 0
        self.calls: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request.url.path)
        if request.url.path == "/cgi-bin/gettoken":
            self.tokens_issued += 1
            return httpx.Response(
                200, json={"errcode": 0, "access_token": f"t{self.tokens_issued}", "expires_in": 7200}
            )
        assert request.url.params["access_token"] == f"t{self.tokens_issued}"
        return httpx.Response(200, json=self.answers.pop(0))


def client_of(wecom: FakeWeCom, clock: list[float]) -> WeComClient:
    http = httpx.AsyncClient(base_url="http://wecom.test", transport=httpx.MockTransport(wecom))
    return WeComClient(http, "ww1", "secret", 1000, clock=lambda: clock[0])


async def test_the_token_is_reused_until_near_expiry_and_replaced_when_wecom_refuses_it() -> None:
    wecom = FakeWeCom(
        [{"errcode": 0, "msgid": "m1"}, {"errcode": 0, "msgid": "m2"}, {"errcode": 42001}, {"errcode": 0}]
    )
    now = [0.0]
    client = client_of(wecom, now)
    assert (await client.post("/x", {}))["msgid"] == "m1"
    assert (await client.post("/x", {}))["msgid"] == "m2"
    assert wecom.tokens_issued == 1
    await client.post("/x", {})  # expired at WeCom: a new token, the call made again
    assert wecom.tokens_issued == 2
    now[0] = 7200.0  # past the margin before expiry: a new one before asking
    wecom.answers.append({"errcode": 0})
    await client.post("/x", {})
    assert wecom.tokens_issued == 3


async def test_busy_is_retriable_and_a_refusal_is_not() -> None:
    client = client_of(
        FakeWeCom([{"errcode": 45009, "errmsg": "api freq out of limit"}, {"errcode": 84061}]), [0.0]
    )
    with pytest.raises(WeComError) as busy:
        await client.post("/x", {})
    assert (busy.value.errcode, busy.value.retriable) == (45009, True)
    with pytest.raises(WeComError) as refused:
        await client.post("/x", {})
    assert (refused.value.errcode, refused.value.retriable) == (84061, False)


def test_a_join_way_is_a_qr_code_into_at_most_five_of_the_templates_groups() -> None:
    way = join_way("g6-owners", [f"wr{n}" for n in range(7)])
    assert (way["scene"], way["remark"], way["state"]) == (2, "g6-owners", "g6-owners")
    assert way["chat_id_list"] == ["wr0", "wr1", "wr2", "wr3", "wr4"] and way["auto_create_room"] == 1
