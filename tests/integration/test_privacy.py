"""Privacy at the edge, against the session's real broker, Redis and workers: a phone number,
however spelt and wherever it hides in an event, reaches no topic, no Redis key or value and no
log; a scoped touchpoint key writes only its sources, event types and identity types, and does
not learn which customer an event went to."""

from __future__ import annotations

import random
from pathlib import Path

import httpx
import pytest

from services.ingest.identities import phone_identity
from tests.conftest import AD_KEY, OPS_TOKEN, Backends, RunningService
from tests.factories import event, unique
from tests.harness import eventually
from tests.sweeps import naming, records_since, redis_facts_in_every_db

pytestmark = pytest.mark.integration


def fresh_mobile() -> str:
    """A valid Chinese mobile no other test uses."""
    return "139" + "".join(random.choice("0123456789") for _ in range(8))


def spellings(digits: str) -> list[str]:
    a, b, c = digits[:3], digits[3:7], digits[7:]
    return [f"{a} {b} {c}", f"{a}-{b}-{c}", f"+86 {digits}", f"+86{digits}", f"86{digits}", digits]


def test_a_phone_hidden_anywhere_in_an_event_reaches_no_topic_key_or_log(
    client: httpx.Client, backends: Backends, tagging: RunningService, campaign: RunningService, log_dir: Path
) -> None:
    digits = fresh_mobile()
    forms = spellings(digits)
    properties = {
        "content_id": "c-privacy",
        "Tel": forms[0],
        "contact": {
            "Phone": forms[1],
            "note": f"call {forms[2]} after six",
            "others": [forms[3], int(digits)],
        },
        "comment": f"我的手机号是{forms[4]}",
        "lookup": {forms[5]: "a phone as a key"},
    }
    identities = {"app_user_id": forms[1], "device_id": unique("dev")}
    posted = [
        event(type="content.view", identities=identities, properties=properties),
        event(type="custom.lead_note", identities={"phone": forms[2]}, properties={"mobile": forms[0]}),
    ]
    answer = client.post("/v1/events/batch", json={"events": posted})
    assert answer.status_code == 202 and answer.json()["accepted"] == 2, answer.text
    customer = answer.json()["results"][0]["customer_id"]
    hashed = phone_identity(digits, "test-salt")
    with httpx.Client(base_url=tagging.api_url, headers={"Authorization": f"Bearer {OPS_TOKEN}"}) as tags:

        def profiled() -> None:
            assert tags.get(f"/v1/customers/{customer}/profile").status_code == 200

        eventually(profiled, timeout=60)

    def no_phone_in(chunks: list[bytes], where: str) -> None:
        for chunk in chunks:
            for form in {digits, *forms}:
                assert form.encode() not in chunk, f"{form!r} in {where}: {chunk[:300]!r}"

    records = [
        (r.key or b"") + b"\x00" + (r.value or b"")
        for r in records_since(backends.kafka_bootstrap_servers, {})
    ]
    assert any(hashed.encode() in r for r in records)  # the events are there, hashed
    no_phone_in(records, "a topic")
    assert naming(redis_facts_in_every_db(backends.redis_url), {digits, *forms}) == set()
    no_phone_in([p.read_bytes() for p in log_dir.rglob("*.log")], "a log")


def test_a_scoped_key_writes_only_its_types_and_identities_and_sees_no_customer(client: httpx.Client) -> None:
    ad = {"X-Api-Key": AD_KEY}
    device = {"device_id": unique("dev")}
    for kind, properties in (
        ("consent.granted", {"channel": "wecom_1v1"}),
        ("wecom.friend_added", {}),
        ("order.placed", {"vehicle_model": "g6"}),
        ("content.click", {"content_id": "c"}),
    ):
        refused = client.post(
            "/v1/events",
            headers=ad,
            json=event(type=kind, source="ad", identities=device, properties=properties),
        )
        assert refused.status_code == 403, (kind, refused.text)
        assert refused.json()["detail"][0]["type"] == "forbidden_type"
    foreign = client.post(
        "/v1/events",
        headers=ad,
        json=event(type="ad.click", source="ad", identities={"unionid": unique("u")}),
    )
    assert foreign.status_code == 403 and foreign.json()["detail"][0]["type"] == "forbidden_identity"
    accepted = client.post(
        "/v1/events", headers=ad, json=event(type="ad.click", source="ad", identities=device)
    )
    assert accepted.status_code == 202
    assert accepted.json()["results"][0]["customer_id"] is None  # the key cannot see customers
    batch = client.post(
        "/v1/events/batch",
        headers=ad,
        json={
            "events": [
                event(type="ad.lead_form", source="ad", identities=device | {"phone": fresh_mobile()}),
                event(type="consent.granted", source="ad", identities=device, properties={"channel": "sms"}),
            ]
        },
    )
    assert batch.status_code == 202
    assert [r["customer_id"] for r in batch.json()["results"]] == [None]
    assert [e["type"] for r in batch.json()["rejected"] for e in r["errors"]] == ["forbidden_type"]


def test_a_non_ascii_key_or_token_is_refused_not_a_server_error(client: httpx.Client) -> None:
    key = "clé-touchpoint".encode()  # headers are bytes: UTF-8 ones arrive as they are
    assert client.post("/v1/events", json=event(), headers={"X-Api-Key": key}).status_code == 401
    bearer = {"Authorization": "Bearer 令牌".encode()}
    assert (
        client.post(
            "/v1/identities/lookup", json={"type": "unionid", "value": "u"}, headers=bearer
        ).status_code
        == 401
    )
