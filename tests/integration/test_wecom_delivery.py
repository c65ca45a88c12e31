"""WeCom end to end (issue 18): a signed `add_external_contact` callback makes a customer with
WeCom consent; a campaign acts for them; the WeCom sender puts exactly one message task on the
(fake) WeCom API for the consultant who added them, and `campaign.delivered` is counted in the
campaign's stats. WeCom failing for a while: the message still goes out once. WeCom refusing:
the action is dead-lettered and counted as failed. A restarted sender sends nothing again. A
group invitation goes out with the QR code of a join way into the template's groups."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.topics import CAMPAIGN_ACTIONS, dead_letter_topic
from tests.campaign_worker import campaigns_in_force
from tests.conftest import OPS_TOKEN, TOUCHPOINT_KEY, WECOM_CORP, Backends, RunningIngest, RunningService
from tests.factories import event, unique
from tests.harness import Process, eventually, free_port, start_service
from tests.topic_reader import TopicReader
from tests.wecom_peer import contact_added, signed

pytestmark = pytest.mark.integration

OPS = {"Authorization": f"Bearer {OPS_TOKEN}"}
SECRET = "test-wecom-app-secret"


@dataclass
class WeComStack:
    fake: str
    sender_env: dict[str, str]
    sender: Process
    log_dir: Path

    def restart_sender(self, **changes: str) -> None:
        self.sender.stop()
        self.sender = _start_sender(self.sender_env | changes, self.log_dir)


@pytest.fixture(scope="module")
def wecom_stack(backends: Backends, log_dir: Path) -> Iterator[WeComStack]:
    port = free_port()
    fake_env = {
        "FAKE_WECOM_PORT": str(port),
        "WECOM_CORP_ID": WECOM_CORP["corp_id"],
        "WECOM_CORP_SECRET": SECRET,
    }
    fake = start_service(
        "fake-wecom", "stack.fake_wecom", fake_env, f"http://127.0.0.1:{port}/readyz", log_dir
    )
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": backends.kafka_bootstrap_servers,
        "REDIS_URL": backends.redis_url,
        "WECOM_SENDER_METRICS_PORT": str(free_port()),
        "WECOM_SENDER_GROUP": f"test-wecom-sender-{uuid.uuid4().hex[:6]}",
        "WECOM_API_BASE_URL": f"http://127.0.0.1:{port}",
        "WECOM_CORP_ID": WECOM_CORP["corp_id"],
        "WECOM_CORP_SECRET": SECRET,
        "WECOM_RETRY_WAIT_S": "0.05",
        "WECOM_CONTENT_URL": "https://brand.test/c/{content_id}",
        "WECOM_GROUP_CHATS": json.dumps({"g6-owners": ["wrG6Owners0001", "wrG6Owners0002"]}),
    }
    stack = WeComStack(f"http://127.0.0.1:{port}", env, _start_sender(env, log_dir), log_dir)
    try:
        yield stack
    finally:
        stack.sender.stop()
        fake.stop()


def _start_sender(env: dict[str, str], log_dir: Path) -> Process:
    ready = f"http://127.0.0.1:{env['WECOM_SENDER_METRICS_PORT']}/readyz"
    return start_service("wecom-sender", "services.wecom_sender.worker", env, ready, log_dir)


def test_a_new_wecom_friend_gets_the_campaigns_message_once_from_their_consultant(
    wecom_stack: WeComStack, ingest: RunningIngest, campaign: RunningService, backends: Backends
) -> None:
    action = {"kind": "send_content", "channel": "wecom_1v1", "content": {"default": "c-g6-launch"}}
    campaign_id, trigger = define(campaign, action)
    ops = httpx.Client(base_url=campaign.api_url, headers=OPS, timeout=10)
    fake = httpx.Client(base_url=wecom_stack.fake, timeout=10)
    wecom = httpx.Client(base_url=ingest.url, timeout=10)
    touchpoint = httpx.Client(base_url=ingest.url, headers={"X-Api-Key": TOUCHPOINT_KEY}, timeout=10)
    contacts = {"ok": unique("wm"), "flaky": unique("wm"), "refused": unique("wm")}
    # WeCom busy twice for one customer (retried), refusing another for good (dead-lettered).
    fake.post("/fake/faults", json={"path": "add_msg_template", "errcode": 45009, "times": 2,
                                    "external_userid": contacts["flaky"]}).raise_for_status()  # fmt: skip
    fake.post("/fake/faults", json={"path": "add_msg_template", "errcode": 84061, "times": 1,
                                    "external_userid": contacts["refused"]}).raise_for_status()  # fmt: skip
    for role, contact in contacts.items():
        assert signed(contact_added(contact, f"consultant-{role}")).post(wecom).text == "success"
        sent = touchpoint.post(
            "/v1/events", json=event(type=trigger, identities={"wecom_external_userid": contact})
        )
        assert sent.status_code == 202, sent.text

    def tasks_for(contact: str) -> list[dict[str, Any]]:
        return [m for m in fake.get("/fake/messages").json() if m["external_userid"] == [contact]]

    def stats() -> dict[str, Any]:
        return ops.get(f"/v1/campaigns/{campaign_id}/stats").json()

    def settled() -> None:
        figures = stats()
        assert (figures["delivered"], figures["failed"]) == (2, {"wecom_84061": 1}), figures

    eventually(settled, timeout=60, interval=0.3)
    (task,) = tasks_for(contacts["ok"])
    assert task["sender"] == "consultant-ok" and task["chat_type"] == "single"
    assert task["attachments"][0]["link"]["url"] == "https://brand.test/c/c-g6-launch"
    assert len(tasks_for(contacts["flaky"])) == 1 and tasks_for(contacts["refused"]) == []

    reader = TopicReader(backends.kafka_bootstrap_servers, dead_letter_topic(CAMPAIGN_ACTIONS), "topic")
    try:

        def dead_lettered() -> None:
            reader.poll()
            letters = [r for _, r, _ in reader.records.get(CAMPAIGN_ACTIONS, [])]
            mine = [r for r in letters if campaign_id in (r.get("value") or "") and "84061" in r["error"]]
            assert len(mine) == 1, letters[-3:]

        eventually(dead_lettered, timeout=20, interval=0.2)
    finally:
        reader.close()

    # A new sender reading every action from the start again sends none of them twice.
    wecom_stack.restart_sender(WECOM_SENDER_GROUP=f"test-wecom-sender-{uuid.uuid4().hex[:6]}")
    metrics = f"http://127.0.0.1:{wecom_stack.sender_env['WECOM_SENDER_METRICS_PORT']}/metrics"

    def caught_up() -> None:
        text = httpx.get(metrics).text
        line = next(
            (
                x
                for x in text.splitlines()
                if x.startswith('pd_wecom_sender_actions_total{outcome="duplicate"}')
            ),
            None,
        )
        assert line is not None and float(line.split()[1]) >= 3, line

    eventually(caught_up, timeout=30, interval=0.3)
    assert [len(tasks_for(c)) for c in contacts.values()] == [1, 1, 0]
    assert (stats()["delivered"], stats()["failed"]) == (2, {"wecom_84061": 1})


def test_a_group_invitation_carries_a_join_way_into_the_templates_groups(
    wecom_stack: WeComStack, ingest: RunningIngest, campaign: RunningService
) -> None:
    action = {
        "kind": "invite_group",
        "channel": "wecom_group",
        "group_template": "g6-owners",
        "content": {"default": "c-g6-owners-club"},
    }
    campaign_id, trigger = define(campaign, action)
    fake = httpx.Client(base_url=wecom_stack.fake, timeout=10)
    wecom = httpx.Client(base_url=ingest.url, timeout=10)
    touchpoint = httpx.Client(base_url=ingest.url, headers={"X-Api-Key": TOUCHPOINT_KEY}, timeout=10)
    invited = [unique("wm"), unique("wm")]
    for contact in invited:
        assert signed(contact_added(contact, "consultant-zhao")).post(wecom).text == "success"
        sent = touchpoint.post(
            "/v1/events", json=event(type=trigger, identities={"wecom_external_userid": contact})
        )
        assert sent.status_code == 202, sent.text

    def invitations() -> list[dict[str, Any]]:
        tasks = [m for m in fake.get("/fake/messages").json() if m["external_userid"][0] in invited]
        assert len(tasks) == 2, tasks
        return tasks

    tasks = eventually(invitations, timeout=60, interval=0.3)
    (way,) = [w for w in fake.get("/fake/join-ways").json() if w["remark"] == "g6-owners"]  # made once
    assert way["chat_id_list"] == ["wrG6Owners0001", "wrG6Owners0002"] and way["scene"] == 2
    assert {t["attachments"][0]["link"]["url"] for t in tasks} == {way["qr_code"]}
    assert {t["sender"] for t in tasks} == {"consultant-zhao"}
    with httpx.Client(base_url=campaign.api_url, headers=OPS, timeout=10) as ops:
        eventually(lambda: _delivered(ops, campaign_id, 2), timeout=30, interval=0.3)


def define(campaign: RunningService, action: dict[str, Any]) -> tuple[str, str]:
    """A campaign acting with `action` on an event of its own; in force when this returns."""
    campaign_id = f"wecom-{uuid.uuid4().hex[:8]}"
    trigger = f"custom.{campaign_id}"
    definition = {
        "id": campaign_id,
        "name": campaign_id,
        "trigger": {"on": "event", "value": trigger},
        "action": action,
        "respect_quiet_hours": False,
    }
    with httpx.Client(base_url=campaign.api_url, headers=OPS, timeout=10) as ops:
        assert ops.post("/v1/campaigns", json=definition).status_code == 201
        version = ops.get("/v1/campaigns").json()["version"]
    eventually(lambda: campaigns_in_force(campaign.metrics_url, version), timeout=20)
    return campaign_id, trigger


def _delivered(ops: httpx.Client, campaign_id: str, expected: int) -> None:
    stats = ops.get(f"/v1/campaigns/{campaign_id}/stats").json()
    assert stats["delivered"] == expected, stats
