"""Nothing is acknowledged that is not on the topic: 503 while the broker or Redis is away,
202 once it is back. Through a blip ingest stays ready (in its Service); after READINESS_GRACE_S
of outage it is not.

Each test uses a broker or Redis of its own: paused (SIGSTOP: connections hang) or killed.
"""

import signal
from pathlib import Path

import httpx
import pytest
from redis import Redis

from tests.conftest import TOUCHPOINT_KEY, Backends, ingest_env
from tests.factories import event
from tests.harness import Process, eventually, free_port, start_redis, start_service, start_tansu
from tests.topic_reader import TopicReader

GRACE_S = 2  # READINESS_GRACE_S of the ingests here: a blip is shorter, an outage longer


@pytest.fixture
def own_broker(log_dir: Path):
    port = free_port()
    broker = start_tansu(port, log_dir)
    yield port, broker
    broker.stop()


@pytest.fixture
def outage_stack(own_broker, backends: Backends, log_dir: Path):
    broker_port, broker = own_broker
    mine = Backends(f"127.0.0.1:{broker_port}", backends.redis_url)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = ingest_env(mine, port, PRODUCE_TIMEOUT_S="1.5", READINESS_GRACE_S=str(GRACE_S))
    ingest = start_service("ingest-outage", "services.ingest", env, f"{url}/readyz", log_dir)
    with httpx.Client(base_url=url, headers={"X-Api-Key": TOUCHPOINT_KEY}, timeout=15) as client:
        yield client, broker, mine
    ingest.stop()


def still_in_service(client: httpx.Client, dependency: str) -> None:
    """Through a blip ingest stays ready (its requests answer 503): not every replica leaves the
    Service at once."""
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"][dependency].startswith("degraded"), ready.text


def out_of_service(client: httpx.Client) -> None:
    """After READINESS_GRACE_S of outage, ingest is not ready."""
    assert client.get("/readyz").status_code == 503


def seen_key(sent: dict) -> str:
    return f"pd:seen:{sent['event_id']}"


def test_paused_broker_means_503_and_nothing_marked_seen_then_202(outage_stack) -> None:
    client, broker, backends = outage_stack
    redis = Redis.from_url(backends.redis_url)
    assert client.post("/v1/events", json=event()).status_code == 202

    broker.signal(signal.SIGSTOP)
    try:
        sent = event()
        response = client.post("/v1/events", json=sent)
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        assert not redis.exists(seen_key(sent))  # a failed produce leaves the id unseen
        still_in_service(client, "kafka")
        eventually(lambda: out_of_service(client), timeout=GRACE_S + 15, interval=0.5)
    finally:
        broker.signal(signal.SIGCONT)

    retried = eventually(lambda: _accepted(client, sent), timeout=30)
    assert retried["duplicate"] is False  # processed now, as it was never acknowledged before
    assert redis.exists(seen_key(sent))
    reader = TopicReader(backends.kafka_bootstrap_servers, "touchpoint.events.v1", "event_id")
    try:
        reader.wait_for([sent["event_id"]])
    finally:
        reader.close()


def test_killed_broker_means_503_then_202_once_a_broker_is_back(outage_stack, log_dir: Path) -> None:
    client, broker, backends = outage_stack
    port = int(backends.kafka_bootstrap_servers.rsplit(":", 1)[1])
    broker.stop()
    sent = event()
    assert client.post("/v1/events", json=sent).status_code == 503
    assert client.post("/v1/events/batch", json={"events": [event(), event()]}).status_code == 503

    replacement: Process = start_tansu(port, log_dir)  # in-memory: starts empty, topics auto-created
    try:
        eventually(lambda: _accepted(client, sent), timeout=60, interval=0.2)
        reader = TopicReader(backends.kafka_bootstrap_servers, "touchpoint.events.v1", "event_id")
        try:
            reader.wait_for([sent["event_id"]], timeout=30)
        finally:
            reader.close()
    finally:
        replacement.stop()


def _accepted(client: httpx.Client, sent: dict) -> dict:
    response = client.post("/v1/events", json=sent)
    assert response.status_code == 202, response.text
    return response.json()["results"][0]


def test_redis_away_means_503_and_not_ready_then_202_once_it_is_back(
    backends: Backends, log_dir: Path
) -> None:
    redis_port = free_port()
    redis = start_redis(redis_port, log_dir)
    mine = Backends(backends.kafka_bootstrap_servers, f"redis://127.0.0.1:{redis_port}/0")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = ingest_env(mine, port, READINESS_GRACE_S=str(GRACE_S))
    ingest = start_service("ingest-redis-outage", "services.ingest", env, f"{url}/readyz", log_dir)
    try:
        with httpx.Client(base_url=url, headers={"X-Api-Key": TOUCHPOINT_KEY}, timeout=15) as client:
            redis.stop()
            sent = event()
            assert client.post("/v1/events", json=sent).status_code == 503
            still_in_service(client, "redis")
            eventually(lambda: out_of_service(client), timeout=GRACE_S + 15, interval=0.5)
            redis = start_redis(redis_port, log_dir)
            assert eventually(lambda: _accepted(client, sent), timeout=30)["duplicate"] is False
    finally:
        ingest.stop()
        redis.stop()
