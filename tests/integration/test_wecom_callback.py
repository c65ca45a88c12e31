"""WeCom callbacks into ingest (issue 18, item 1-2), against the session's ingest, broker and
Redis. WeCom's side is wechatpy's crypto (tests/wecom_peer.py): what it signs and encrypts is
accepted; a tampered signature, another corp's message, an old timestamp and a replayed nonce are
refused; the same callback delivered twice makes one event."""

from __future__ import annotations

import time

import httpx
import pytest
import redis

from services.ingest.wecom_routes import MAX_CALLBACK_BYTES
from shared.wecom import consultant_key
from tests.conftest import OPS_TOKEN, Backends, RunningIngest
from tests.factories import unique
from tests.harness import eventually
from tests.topic_reader import TopicReader
from tests.wecom_peer import contact_added, group_members_changed, signed, url_verification

pytestmark = pytest.mark.integration

OPS = {"Authorization": f"Bearer {OPS_TOKEN}"}


@pytest.fixture
def wecom(ingest: RunningIngest) -> httpx.Client:
    with httpx.Client(base_url=ingest.url, timeout=10) as client:  # WeCom has no key: it signs
        yield client


def customer_of(ingest: RunningIngest, external_userid: str) -> str:
    found = httpx.get(f"{ingest.url}/v1/identities/wecom_external_userid/{external_userid}", headers=OPS)
    assert found.status_code == 200, found.text
    return found.json()["customer_id"]


def test_the_callback_url_verifies_with_the_corps_token_and_key(wecom: httpx.Client) -> None:
    answer = wecom.get("/v1/wecom/callback", params=url_verification("echo-4711"))
    assert answer.status_code == 200 and answer.text == "echo-4711"
    tampered = url_verification("echo-4711") | {"msg_signature": "0" * 40}
    assert wecom.get("/v1/wecom/callback", params=tampered).status_code == 403


def test_a_new_contact_becomes_a_wecom_friend_once_however_often_wecom_sends_it(
    wecom: httpx.Client, ingest: RunningIngest, backends: Backends
) -> None:
    contact, at = unique("wm"), int(time.time())
    message = contact_added(contact, "consultant-li", state="ad-g6-spring", at=at)
    first = signed(message).post(wecom)
    assert (first.status_code, first.text) == (200, "success")
    customer = customer_of(ingest, contact)
    # WeCom's retry of the same callback: a new nonce and time, the same message.
    again = signed(message, timestamp=at + 5).post(wecom)
    assert (again.status_code, again.text) == (200, "success")

    reader = TopicReader(backends.kafka_bootstrap_servers, "touchpoint.events.v1", "customer_id")
    try:

        def published() -> list[dict]:
            reader.poll()
            events = [r for _, r, _ in reader.records.get(customer, []) if r["type"] == "wecom.friend_added"]
            assert events, "not on the topic yet"
            return events

        (event,) = eventually(published, timeout=20, interval=0.1)
    finally:
        reader.close()
    assert event["source"] == "wecom" and event["identities"] == {"wecom_external_userid": contact}
    assert event["properties"] == {"consultant_id": "consultant-li", "channel_code": "ad-g6-spring"}
    assert event["api_key_id"] == "wecom:wwtest0000000001"
    store = redis.Redis.from_url(backends.redis_url)
    try:
        assert store.get(consultant_key(contact)) == b"consultant-li"
        # Erased, the customer's WeCom contact is forgotten with the consultant who added them.
        erased = httpx.delete(f"{ingest.url}/v1/customers/{customer}", headers=OPS, timeout=30)
        assert erased.status_code == 200, erased.text
        assert store.get(consultant_key(contact)) is None
    finally:
        store.close()


def test_what_is_not_the_corps_fresh_signed_callback_is_refused(wecom: httpx.Client) -> None:
    message = contact_added(unique("wm"), "consultant-li")
    tampered = signed(message)
    tampered.params["msg_signature"] = ("1" if tampered.params["msg_signature"][0] != "1" else "2") + (
        tampered.params["msg_signature"][1:]
    )
    assert tampered.post(wecom).status_code == 403
    other_corp = signed(message, corp_id="wwsomeoneelse0001")  # right token, another receive id
    answer = other_corp.post(wecom)
    assert answer.status_code == 403 and "another corp" in answer.text
    old = signed(message, timestamp=int(time.time()) - 3600)
    assert old.post(wecom).status_code == 403
    fresh = signed(message)
    assert fresh.post(wecom).status_code == 200
    replayed = fresh.post(wecom)  # the very same request again: its nonce was seen
    assert replayed.status_code == 403 and "nonce" in replayed.text
    unsigned = wecom.post(
        "/v1/wecom/callback", params=fresh.params, content="<xml><Encrypt>x</Encrypt></xml>"
    )
    assert unsigned.status_code == 403
    huge = wecom.post("/v1/wecom/callback", params=fresh.params, content="x" * (MAX_CALLBACK_BYTES + 1))
    assert huge.status_code == 413


def test_members_joining_a_customer_group_each_join(wecom: httpx.Client, ingest: RunningIngest) -> None:
    joined = [unique("wm"), unique("wo")]
    message = group_members_changed(unique("wr"), "add_member", [*joined, "staff-zhang"])
    assert signed(message).post(wecom).text == "success"
    for contact in joined:
        eventually(lambda contact=contact: customer_of(ingest, contact), timeout=10)
    staff = httpx.get(f"{ingest.url}/v1/identities/wecom_external_userid/staff-zhang", headers=OPS)
    assert staff.status_code == 404  # the brand's own staff are not customers
