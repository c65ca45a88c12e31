"""docs/contract.md's ingest contract, over HTTP against a real ingest process, broker and Redis."""

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import httpx
import orjson
import pytest
import redis

from services.ingest.event_counts import minute_key
from services.ingest.identities import PHONE_HASH, phone_identity
from shared.events import IngestedEvent
from tests.conftest import OPS_TOKEN, WECOM_ONLY_KEY
from tests.factories import event, unique
from tests.harness import eventually

OPS = {"Authorization": f"Bearer {OPS_TOKEN}"}


def test_an_accepted_event_is_on_the_topic_keyed_by_its_customer(client, events_topic) -> None:
    sent = event(identities={"unionid": unique("u")})
    response = client.post("/v1/events", json=sent)
    assert response.status_code == 202
    body = response.json()
    assert body["accepted"] == 1
    [result] = body["results"]
    assert (result["event_id"], result["duplicate"]) == (sent["event_id"], False)

    [(key, record, _)] = events_topic.wait_for([sent["event_id"]])[sent["event_id"]]
    assert key == result["customer_id"].encode()
    assert record["customer_id"] == result["customer_id"]
    assert record["received_at"] and record["api_key_id"].startswith("key_")
    assert IngestedEvent.model_validate(record).customer_id == result["customer_id"]  # the contract's schema
    same_instant = datetime.fromisoformat(record.pop("occurred_at")) == datetime.fromisoformat(
        sent["occurred_at"]
    )
    assert same_instant and {k: record[k] for k in sent if k != "occurred_at"} == {
        k: v for k, v in sent.items() if k != "occurred_at"
    }


def test_a_repeated_event_is_acknowledged_as_duplicate_and_published_once(client, events_topic) -> None:
    identities = {"wecom_external_userid": unique("wm")}
    sent = event(identities=identities)
    first = client.post("/v1/events", json=sent).json()["results"][0]
    again = client.post("/v1/events", json=sent).json()["results"][0]
    assert again == {**first, "duplicate": True}
    # A later event of the same customer lands on the same partition after any second copy.
    marker = event(identities=identities)
    assert client.post("/v1/events", json=marker).status_code == 202
    events_topic.wait_for([marker["event_id"]])
    assert len(events_topic.records[sent["event_id"]]) == 1


def test_raw_phone_numbers_never_reach_the_topic_or_redis(client, events_topic, backends) -> None:
    sent = event(
        type="ad.lead_form",
        source="ad",
        properties={"phone": "139 0013 9000"},
        identities={"phone": "+86 138-0013-8000", "device_id": unique("d")},
    )
    assert client.post("/v1/events", json=sent).status_code == 202
    [(_, record, _)] = events_topic.wait_for([sent["event_id"]])[sent["event_id"]]
    raw = orjson.dumps(record).decode()
    assert "13800138000" not in raw and "13900139000" not in raw
    assert record["identities"]["phone"] == phone_identity("13800138000", "test-salt")
    assert record["properties"]["phone"] == phone_identity("13900139000", "test-salt")
    with redis.Redis.from_url(backends.redis_url) as store:
        phone_keys = [key.decode() for key in store.scan_iter("pd:idn:phone:*")]
    assert f"pd:idn:phone:{phone_identity('13800138000', 'test-salt')}" in phone_keys
    assert all(PHONE_HASH.match(key.removeprefix("pd:idn:phone:")) for key in phone_keys)


def test_missing_or_unknown_key_is_401_and_a_forbidden_source_403(client) -> None:
    assert client.post("/v1/events", json=event(), headers={"X-Api-Key": ""}).status_code == 401
    assert client.post("/v1/events", json=event(), headers={"X-Api-Key": "nope"}).status_code == 401
    limited = {"X-Api-Key": WECOM_ONLY_KEY}
    assert client.post("/v1/events", json=event(source="wecom"), headers=limited).status_code == 202
    assert client.post("/v1/events", json=event(source="app"), headers=limited).status_code == 403


def test_bad_input_is_422_with_field_level_errors(client) -> None:
    response = client.post(
        "/v1/events", json=event(type="store.visit", properties={}, occurred_at="2026-01-01")
    )
    assert response.status_code == 422
    locs = {tuple(error["loc"]) for error in response.json()["detail"]}
    assert ("body", "occurred_at") in locs
    response = client.post("/v1/events", json=event(type="store.visit", properties={}))
    assert [e["loc"] for e in response.json()["detail"]] == [["body", "properties", "dealer_id"]]
    response = client.post("/v1/events", json=event(identities={"phone": "12345"}))
    assert [e["loc"] for e in response.json()["detail"]] == [["body", "identities", "phone"]]
    assert (
        client.post(
            "/v1/events", content=b"{not json", headers={"content-type": "application/json"}
        ).status_code
        == 422
    )


def test_bodies_over_the_limit_are_413_declared_or_chunked(client) -> None:
    big = event(properties={"content_id": "c", "blob": "x" * 300_000})
    assert client.post("/v1/events", json=big).status_code == 413

    def chunks():
        yield orjson.dumps(big)

    assert (
        client.post("/v1/events", content=chunks(), headers={"content-type": "application/json"}).status_code
        == 413
    )


def test_an_event_over_the_size_the_broker_takes_is_refused_alone_or_in_a_batch(client, events_topic) -> None:
    # MAX_EVENT_BYTES is 50,000 in the tests, MAX_BODY_BYTES 200,000.
    # Within the shape bounds (strings of at most 4,096 characters), over the size.
    big = event(properties={"content_id": "c", **{f"part_{n}": "x" * 4_000 for n in range(15)}})
    assert client.post("/v1/events", json=big).status_code == 413
    fine = event()
    response = client.post("/v1/events/batch", json={"events": [big, fine]})
    assert response.status_code == 202
    body = response.json()
    assert [r["event_id"] for r in body["results"]] == [fine["event_id"]]
    assert [(r["index"], [e["type"] for e in r["errors"]]) for r in body["rejected"]] == [(0, ["too_large"])]
    events_topic.wait_for([fine["event_id"]])
    assert big["event_id"] not in events_topic.records


def test_a_batch_accepts_the_good_events_and_lists_the_rejected(client, events_topic) -> None:
    good = [event(), event(type="live.watch", source="live_stream", properties={"duration_s": 120})]
    bad = event(type="quote.requested", properties={})
    response = client.post("/v1/events/batch", json={"events": [good[0], bad, "junk", good[1]]})
    assert response.status_code == 202
    body = response.json()
    assert body["accepted"] == 2
    assert [(r["index"], r["event_id"]) for r in body["results"]] == [
        (0, good[0]["event_id"]),
        (3, good[1]["event_id"]),
    ]
    assert [r["index"] for r in body["rejected"]] == [1, 2]
    assert body["rejected"][0]["errors"][0]["loc"] == ["properties", "vehicle_model"]
    events_topic.wait_for([e["event_id"] for e in good])
    assert bad["event_id"] not in events_topic.records


def test_a_consent_for_an_unknown_channel_is_422_alone_and_rejected_in_a_batch(client, events_topic) -> None:
    unknown = event(type="consent.revoked", properties={"channel": "carrier_pigeon"})
    response = client.post("/v1/events", json=unknown)
    assert response.status_code == 422
    assert [(e["loc"], e["type"]) for e in response.json()["detail"]] == [
        (["body", "properties", "channel"], "unknown_channel")
    ]
    everything = event(type="consent.revoked", properties={"channel": "all"})
    response = client.post("/v1/events/batch", json={"events": [everything, unknown]})
    assert response.status_code == 202
    body = response.json()
    assert [r["event_id"] for r in body["results"]] == [everything["event_id"]]
    assert [(r["index"], [e["type"] for e in r["errors"]]) for r in body["rejected"]] == [
        (1, ["unknown_channel"])
    ]
    events_topic.wait_for([everything["event_id"]])
    assert unknown["event_id"] not in events_topic.records


def test_a_batch_rejects_forbidden_sources_per_event(client) -> None:
    response = client.post(
        "/v1/events/batch",
        headers={"X-Api-Key": WECOM_ONLY_KEY},
        json={"events": [event(source="wecom"), event(source="ad", type="ad.click")]},
    )
    body = response.json()
    assert response.status_code == 202 and body["accepted"] == 1
    assert body["rejected"][0]["errors"][0]["type"] == "forbidden_source"


def test_a_batch_with_nothing_acceptable_or_out_of_bounds_is_422(client) -> None:
    assert client.post("/v1/events/batch", json={"events": [{"type": "x"}]}).status_code == 422
    assert client.post("/v1/events/batch", json={"events": []}).status_code == 422
    too_many = [event() for _ in range(501)]
    assert client.post("/v1/events/batch", json={"events": too_many}).status_code == 422


def test_a_batch_of_500_goes_through_in_one_request(client, events_topic) -> None:
    batch = [event() for _ in range(500)]
    response = client.post("/v1/events/batch", json={"events": batch})
    assert response.status_code == 202 and response.json()["accepted"] == 500
    events_topic.wait_for([e["event_id"] for e in batch])


def test_lookup_finds_the_survivor_by_any_identifier_and_needs_the_ops_token(client, merges_topic) -> None:
    union, wecom, phone = unique("u"), unique("wm"), "13700137000"
    older = client.post("/v1/events", json=event(identities={"unionid": union, "phone": phone})).json()
    newer = client.post("/v1/events", json=event(identities={"wecom_external_userid": wecom})).json()
    linked = client.post(
        "/v1/events", json=event(identities={"wecom_external_userid": wecom, "unionid": union})
    ).json()
    survivor = older["results"][0]["customer_id"]
    merged = newer["results"][0]["customer_id"]
    assert linked["results"][0]["customer_id"] == survivor != merged

    for path in (f"/v1/identities/wecom_external_userid/{wecom}", "/v1/identities/phone/+86 137 0013 7000"):
        response = client.get(path, headers=OPS)
        assert response.status_code == 200
        assert response.json()["customer_id"] == survivor
    assert set(response.json()["identities"]) == {"unionid", "wecom_external_userid", "phone"}

    assert client.get(f"/v1/identities/unionid/{union}").status_code == 401
    assert (
        client.get(f"/v1/identities/unionid/{union}", headers={"Authorization": "Bearer x"}).status_code
        == 401
    )
    assert client.get(f"/v1/identities/unionid/{unique('nobody')}", headers=OPS).status_code == 404
    assert client.get("/v1/identities/email/a@b.c", headers=OPS).status_code == 422

    # The same lookup with the identifier in the body (no access log keeps a phone given so).
    lookup = "/v1/identities/lookup"
    found = client.post(lookup, json={"type": "phone", "value": "+86 137 0013 7000"}, headers=OPS)
    assert found.status_code == 200 and found.json()["customer_id"] == survivor
    assert client.post(lookup, json={"type": "wecom_external_userid", "value": wecom}).status_code == 401
    nobody = {"type": "unionid", "value": unique("nobody")}
    assert client.post(lookup, json=nobody, headers=OPS).status_code == 404
    assert client.post(lookup, json={"type": "email", "value": "a@b.c"}, headers=OPS).status_code == 422
    assert client.post(lookup, json={"type": "phone", "value": "not a phone"}, headers=OPS).status_code == 422

    [(key, record, _)] = merges_topic.wait_for([merged])[merged]
    assert key == merged.encode()
    assert (record["survivor_customer_id"], record["merge_id"]) == (survivor, f"{merged}>{survivor}")
    assert record["identities"] == {"wecom_external_userid": [wecom]}


def test_a_merge_is_on_the_events_topic_between_the_merged_customers_events_and_its_cause(
    client, events_topic
) -> None:
    union, wecom = unique("u"), unique("wm")
    older = client.post("/v1/events", json=event(identities={"unionid": union})).json()
    earlier = [event(identities={"wecom_external_userid": wecom}) for _ in range(2)]
    newer = [client.post("/v1/events", json=sent).json() for sent in earlier]
    linking = event(identities={"wecom_external_userid": wecom, "unionid": union})
    response = client.post("/v1/events", json=linking)
    assert response.status_code == 202  # only once its merge's records were acknowledged too
    survivor, merged = older["results"][0]["customer_id"], newer[0]["results"][0]["customer_id"]
    assert response.json()["results"][0]["customer_id"] == survivor != merged
    merge_id = f"{merged}>{survivor}"

    def log_of(event_id: str) -> list[tuple[bytes | None, str]]:
        """(key, event id or type) of every record read on the event's partition, in order."""
        [(_, _, partition)] = events_topic.records[event_id]
        return [(key, r.get("event_id") or r["type"]) for key, r in events_topic.partitions[partition]]

    def in_place() -> None:
        events_topic.poll()
        handover, cause = (merged.encode(), "identity.merged"), (survivor.encode(), linking["event_id"])
        # The merged customer's partition: its events, then the handover.
        merged_log = log_of(earlier[0]["event_id"])
        assert handover in merged_log
        before = merged_log[: merged_log.index(handover)]
        assert {(merged.encode(), e["event_id"]) for e in earlier} <= set(before)
        # The survivor's partition: the join, right before the event that caused it.
        survivor_log = log_of(linking["event_id"])
        assert survivor_log[survivor_log.index(cause) - 1] == (survivor.encode(), "identity.joined")
        [(_, joined, _)] = [r for r in events_topic.records[merge_id] if r[1]["type"] == "identity.joined"]
        assert (joined["customer_id"], joined["merged_customer_id"]) == (survivor, merged)

    events_topic.wait_for([e["event_id"] for e in earlier] + [linking["event_id"]])
    eventually(in_place)
    merged_record = next(r for _, r, _ in events_topic.records[merge_id] if r["type"] == "identity.merged")
    assert (merged_record["survivor_customer_id"], merged_record["identities"]) == (
        survivor,
        {"wecom_external_userid": [wecom]},
    )


def test_requests_racing_to_link_the_same_identifiers_make_one_customer(ingest) -> None:
    workers = 16
    barrier = threading.Barrier(workers)

    def post(pair: tuple[str, str], flip: bool) -> str:
        identities = {"unionid": pair[0], "openid": pair[1]}
        if flip:
            identities = dict(reversed(identities.items()))
        with httpx.Client(base_url=ingest.url, headers={"X-Api-Key": "test-touchpoint-key"}) as http:
            barrier.wait(timeout=10)
            response = http.post("/v1/events", json=event(identities=identities))
        assert response.status_code == 202
        return response.json()["results"][0]["customer_id"]

    with ThreadPoolExecutor(workers) as pool:
        for _ in range(5):
            pair = (unique("u"), unique("o"))
            customers = list(pool.map(lambda i, p=pair: post(p, i % 2 == 1), range(workers)))
            assert len(set(customers)) == 1, customers


def test_operations_endpoints(client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"kafka": "ok", "redis": "ok"}
    client.post("/v1/events", json=event())
    metrics = client.get("/metrics").text
    assert 'pd_ingest_events_total{outcome="accepted",source="wecom",type="content.click"}' in metrics
    assert "pd_ingest_request_seconds_bucket" in metrics
    client.post("/v1/events", json=event(type="live.watch", source="live_stream", properties={}))
    assert (
        _sample(client.get("/metrics").text, 'outcome="invalid",source="live_stream",type="live.watch"') >= 1
    )
    assert "process_resident_memory_bytes" in metrics
    spec = client.get("/openapi.json").json()
    assert {"/v1/events", "/v1/events/batch", "/v1/identities/{identity_type}/{value}"} <= set(spec["paths"])
    assert client.get("/docs").status_code == 200


@pytest.mark.parametrize("path", ["/v1/events", "/v1/events/batch"])
def test_wrong_content_is_422_not_500(client, path: str) -> None:
    assert client.post(path, json=[1, 2]).status_code == 422


def _sample(metrics: str, labels: str) -> float:
    line = next(
        line for line in metrics.splitlines() if line.startswith(f"pd_ingest_events_total{{{labels}}}")
    )
    return float(line.rsplit(" ", 1)[1])


def _events_per_minute(client: httpx.Client, minutes: int = 1440) -> list[dict]:
    response = client.get("/v1/stats/events", params={"minutes": minutes}, headers=OPS)
    assert response.status_code == 200, response.text
    return response.json()["minutes"]


def _counted(client: httpx.Client, source: str) -> int:
    # The whole day: nothing this session counted can leave the window between two reads.
    return sum(minute["by_source"].get(source, 0) for minute in _events_per_minute(client))


def test_accepted_events_are_counted_per_minute_and_source_duplicates_not(client) -> None:
    before = {source: _counted(client, source) for source in ("call_center", "mall")}
    earlier = event(source="call_center")
    assert client.post("/v1/events", json=earlier).status_code == 202
    fresh = [event(source="call_center") for _ in range(5)]
    bad = event(source="call_center", type="store.visit", properties={})
    batch = [fresh[0], earlier, *fresh[1:], fresh[0], bad, event(source="mall")]
    response = client.post("/v1/events/batch", json={"events": batch})
    assert response.status_code == 202
    assert [r["duplicate"] for r in response.json()["results"]] == [False, True, *[False] * 4, True, False]
    # Counted before the 202: the earlier event once, the five new ones, not the repeats nor the
    # rejected one; and the other source apart.
    assert _counted(client, "call_center") - before["call_center"] == 6
    assert _counted(client, "mall") - before["mall"] == 1


def test_events_per_minute_are_every_minute_of_the_window_oldest_first(client) -> None:
    started = datetime.now(UTC).replace(second=0, microsecond=0)
    minutes = _events_per_minute(client, 60)
    ended = datetime.now(UTC).replace(second=0, microsecond=0)
    assert len(minutes) == 60
    ats = [datetime.fromisoformat(m["at"]) for m in minutes]
    assert minutes[-1]["at"].endswith("+00:00") and started <= ats[-1] <= ended  # the current minute
    assert all(later - earlier == timedelta(minutes=1) for earlier, later in pairwise(ats))
    assert all(isinstance(m["by_source"], dict) for m in minutes)
    assert len(_events_per_minute(client, 1440)) == 1440
    for wrong in (0, 1441):
        assert client.get("/v1/stats/events", params={"minutes": wrong}, headers=OPS).status_code == 422
    assert client.get("/v1/stats/events").status_code == 401
    assert client.get("/v1/stats/events", headers={"Authorization": "Bearer x"}).status_code == 401


def test_a_failure_to_count_neither_fails_nor_holds_the_events(client, backends) -> None:
    now = datetime.now(UTC)
    # The minutes the ingest process may count in now, made something a count cannot go into.
    keys = [minute_key(now + timedelta(minutes=shift)) for shift in (-1, 0, 1)]
    with redis.Redis.from_url(backends.redis_url) as store:
        for key in keys:
            store.set(key, "not a hash", ex=300)
        try:
            before = _failures(client)
            sent = event()
            response = client.post("/v1/events", json=sent)
            assert response.status_code == 202
            assert response.json()["results"][0]["duplicate"] is False
            assert _failures(client) == before + 1
            again = client.post("/v1/events", json=sent).json()["results"][0]
            assert again["duplicate"] is True  # marked seen all the same
        finally:
            store.delete(*keys)


def _failures(client: httpx.Client) -> float:
    metrics = client.get("/metrics").text
    line = next(
        line for line in metrics.splitlines() if line.startswith("pd_ingest_event_count_failures_total")
    )
    return float(line.rsplit(" ", 1)[1])


def post_one(client: httpx.Client, identities: dict[str, str]) -> str:
    answer = client.post("/v1/events", json=event(identities=identities))
    assert answer.status_code == 202, answer.text
    return answer.json()["results"][0]["customer_id"]


def fresh_mobile() -> str:
    return "139" + str(uuid.uuid4().int)[:8]


def test_an_unbound_identifier_forms_its_own_customer_and_keeps_its_future_events(client) -> None:
    phone, device = fresh_mobile(), unique("dev")
    owner = post_one(client, {"phone": phone})
    stranger = post_one(client, {"device_id": device})
    assert post_one(client, {"phone": phone, "device_id": device}) == owner  # one shared tablet: merged
    lookup = client.post("/v1/identities/lookup", headers=OPS, json={"type": "device_id", "value": device})
    assert lookup.json()["customer_id"] == owner != stranger

    unbind = {"identities": [{"type": "device_id", "value": device}]}
    unbound = client.post(f"/v1/customers/{owner}/unbind", headers=OPS, json=unbind)
    assert unbound.status_code == 200, unbound.text
    new = unbound.json()["customer_id"]
    assert new not in (owner, stranger)
    assert post_one(client, {"device_id": device}) == new
    assert post_one(client, {"phone": phone}) == owner
    mine = client.post("/v1/identities/lookup", headers=OPS, json={"type": "phone", "value": phone}).json()
    assert mine["identities"] == {"phone": [phone_identity(phone, "test-salt")]}
    assert client.post(f"/v1/customers/{owner}/unbind", headers=OPS, json=unbind).status_code == 409
    assert (
        client.post(f"/v1/customers/{owner}/unbind", headers=OPS, json={"identities": []}).status_code == 422
    )
    assert client.post(f"/v1/customers/{owner}/unbind", json=unbind).status_code == 401


def test_a_type_past_its_limit_is_accepted_unlinked_and_listed_for_review(client) -> None:
    device, unionids = unique("dev"), [unique("u") for _ in range(3)]
    customer = post_one(client, {"device_id": device, "unionid": unionids[0]})
    assert post_one(client, {"device_id": device, "unionid": unionids[1]}) == customer  # unionid: 2 at most
    assert post_one(client, {"device_id": device, "unionid": unionids[2]}) == customer  # accepted, not linked
    unlinked = client.post(
        "/v1/identities/lookup", headers=OPS, json={"type": "unionid", "value": unionids[2]}
    )
    assert unlinked.status_code == 404
    listed = client.get("/v1/identity-conflicts", headers=OPS, params={"limit": 50}).json()
    assert any(c["customer_id"] == customer and c["reason"] == "identifier_limit" for c in listed)


def test_an_event_over_the_size_once_its_phones_are_hashed_is_refused(client) -> None:
    # 1,000 phones: about 14 KB as sent (MAX_EVENT_BYTES is 50,000 here), about 67 KB as hashed.
    phones = {f"numbers_{n}": ["13800138000"] * 100 for n in range(10)}
    big = event(type="custom.phone_list", properties=phones)
    single = client.post("/v1/events", json=big)
    assert single.status_code == 422
    assert [e["type"] for e in single.json()["detail"]] == ["too_large"]
    fine = event()
    batch = client.post("/v1/events/batch", json={"events": [big, fine]}).json()
    assert [r["event_id"] for r in batch["results"]] == [fine["event_id"]]
    assert [(r["index"], [e["type"] for e in r["errors"]]) for r in batch["rejected"]] == [(0, ["too_large"])]
