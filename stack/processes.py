"""What the stack runs, as plain data. Adding a service process is one entry in `SERVICES`.

Infrastructure (broker, Redis) is started first and probed by its own protocol; services are
started once topics exist and are ready when their `/readyz` answers 200.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
BROKER_PORT = 9092
REDIS_PORT = 6380  # 6379 is usually taken by a system Redis on dev machines
BOOTSTRAP_SERVERS = f"{HOST}:{BROKER_PORT}"
REDIS_URL = f"redis://{HOST}:{REDIS_PORT}/0"
TOPIC_PARTITIONS = 3

# The broker's object store when it keeps its records: s3rver on files under .run/durable/
# (`make up DURABLE=1`) or moto in memory (the fault suite's), and what Tansu needs to reach it
# (s3rver's fixed development credentials; moto takes any).
S3_PORT = 4568
S3_BUCKET = "tansu"
S3_CLIENT_ENV = {
    "AWS_ACCESS_KEY_ID": "S3RVER",
    "AWS_SECRET_ACCESS_KEY": "S3RVER",
    "AWS_DEFAULT_REGION": "auto",
    "AWS_ENDPOINT": f"http://{HOST}:{S3_PORT}",
    "AWS_ALLOW_HTTP": "true",
}

TOUCHPOINT_KEY = "local-touchpoint-key"
OPS_TOKEN = "local-ops-token"
CONSOLE_PORT = 8005
FAKE_WECOM_PORT = 8010
# The local corp's WeCom settings: what WeCom's admin console would be given (README, "Connecting
# WeCom"); the WeCom sender talks to the fake WeCom API with the app secret.
WECOM_CALLBACK = {
    "corp_id": "wwlocal0000000001",
    "token": "local-wecom-token",
    "encoding_aes_key": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
}
WECOM_SECRET = "local-wecom-secret"


@dataclass(frozen=True)
class Service:
    """One service process: a console script of the venv, its port and its own settings."""

    name: str
    script: str  # console script in the venv's bin/ (declared in pyproject.toml)
    port: int  # the port /readyz (and /metrics) answer on
    env: Mapping[str, str] = field(default_factory=dict)
    api: bool = False  # an HTTP API worth showing (with /docs), not just a metrics port
    shown: str = "/metrics"  # what `up` points at for a process that is not an API
    pages: bool = False  # a web console for people: its URL is what `up` and `demo` point at

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def ready_url(self) -> str:
        return f"{self.url}/readyz"


SERVICES: tuple[Service, ...] = (
    Service(
        "ingest",
        "pd-ingest",
        8001,
        {"INGEST_PORT": "8001", "WECOM_CALLBACKS": json.dumps([WECOM_CALLBACK])},
        api=True,
    ),
    Service("scoring-worker", "pd-scoring-worker", 9102, {"SCORING_METRICS_PORT": "9102"}),
    Service("scoring-api", "pd-scoring-api", 8002, {"SCORING_PORT": "8002"}, api=True),
    Service("tagging-worker", "pd-tagging-worker", 9103, {"TAGGING_METRICS_PORT": "9103"}),
    Service("tagging-api", "pd-tagging-api", 8003, {"TAGGING_PORT": "8003"}, api=True),
    Service(
        "campaign-worker",
        "pd-campaign-worker",
        9104,
        # One WeCom 1v1 marketing message per customer a day, whichever campaign sends it.
        {"CAMPAIGN_METRICS_PORT": "9104", "CHANNEL_DAILY_CAPS": '{"wecom_1v1": 1}'},
    ),
    Service("campaign-api", "pd-campaign-api", 8004, {"CAMPAIGN_PORT": "8004"}, api=True),
    Service("console", "pd-console", CONSOLE_PORT, {"CONSOLE_PORT": str(CONSOLE_PORT)}, pages=True),
    # A stand-in for WeCom's API (stack/fake_wecom.py), and the sender delivering to it.
    Service(
        "fake-wecom",
        "pd-fake-wecom",
        FAKE_WECOM_PORT,
        {"FAKE_WECOM_PORT": str(FAKE_WECOM_PORT), "WECOM_CORP_SECRET": WECOM_SECRET},
        shown="/fake/messages",
    ),
    Service(
        "wecom-sender",
        "pd-wecom-sender",
        9105,
        {
            "WECOM_SENDER_METRICS_PORT": "9105",
            "WECOM_API_BASE_URL": f"http://{HOST}:{FAKE_WECOM_PORT}",
            "WECOM_CORP_ID": WECOM_CALLBACK["corp_id"],
            "WECOM_CORP_SECRET": WECOM_SECRET,
        },
    ),
)
CONSOLE = next(service for service in SERVICES if service.pages)


@dataclass(frozen=True)
class Program:
    """A supervised process as supervisord sees it."""

    name: str
    command: tuple[str, ...]
    port: int
    env: Mapping[str, str] = field(default_factory=dict)
    priority: int = 100  # supervisord stops higher priorities first: services before infrastructure


def ingest_api_keys() -> dict[str, Any]:
    """The local touchpoint key (every source and type), and INGEST_API_KEYS's when it is set."""
    extra = json.loads(os.environ.get("INGEST_API_KEYS") or "{}")
    if not isinstance(extra, dict):
        raise SystemExit("INGEST_API_KEYS must be a JSON object: key -> its scope (README, Configuration)")
    return {TOUCHPOINT_KEY: ["*"]} | extra


def ops_tokens() -> list[str]:
    """The local ops token (an admin), and OPS_TOKENS's entries when it is set."""
    extra = [t.strip() for t in os.environ.get("OPS_TOKENS", "").split(",") if t.strip()]
    return [OPS_TOKEN, *(t for t in extra if t != OPS_TOKEN)]


def common_service_env() -> dict[str, str]:
    """Settings every service gets: where the broker and Redis are, and the local credentials."""
    return {
        "KAFKA_BOOTSTRAP_SERVERS": BOOTSTRAP_SERVERS,
        "REDIS_URL": REDIS_URL,
        "TOPIC_PARTITIONS": str(TOPIC_PARTITIONS),
        "HTTP_HOST": HOST,
        # The local key and token always, so that `make demo` works; plus those the caller's
        # environment sets (to try scoped keys and named roles locally). `up` prints them.
        "INGEST_API_KEYS": json.dumps(ingest_api_keys()),
        "OPS_TOKENS": ",".join(ops_tokens()),
        # The console's session cookie secret: fixed locally, so sessions survive a restart.
        "CONSOLE_SESSION_SECRET": "local-console-session-secret-not-for-production",
        "LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",  # log lines reach .run/logs/ as they happen
    }


def broker_program(tansu_bin: str, durable: bool = False) -> Program:
    """Tansu keeping everything in memory, or (durable) in the local S3 store (`s3_program`)."""
    url = f"tcp://{BOOTSTRAP_SERVERS}"
    # Storage named explicitly, so a STORAGE_ENGINE in the caller's env cannot change it.
    command = (tansu_bin, "broker", "--listener-url", url, "--advertised-listener-url", url)
    command += ("--storage-engine", "s3://tansu/" if durable else "memory://tansu/", "--silent")
    return Program("tansu", command, BROKER_PORT, S3_CLIENT_ENV if durable else {}, priority=10)


def redis_program(redis_bin: str, data_dir: Path | None = None) -> Program:
    """Redis in memory, or (with `data_dir`) with its append-only file there, as production runs it."""
    command: tuple[str, ...] = (redis_bin, "--port", str(REDIS_PORT), "--bind", HOST, "--save", "")
    if data_dir is None:
        command += ("--appendonly", "no")
    else:
        command += ("--appendonly", "yes", "--appendfsync", "everysec", "--dir", str(data_dir))
    return Program("redis", command, REDIS_PORT, {}, priority=10)


def s3_program(node_bin: str, s3rver_js: Path, data_dir: Path) -> Program:
    """s3rver (npm): an S3-compatible server keeping its objects in files, for a durable Tansu."""
    command = (node_bin, str(s3rver_js), "--directory", str(data_dir), "--address", HOST)
    command += ("--port", str(S3_PORT), "--configure-bucket", S3_BUCKET, "--silent")
    return Program("s3", command, S3_PORT, {}, priority=5)


def moto_program(moto_server: Path) -> Program:
    """moto's S3 server: objects in memory, so they outlive a broker restart, not moto's own. The
    bucket is created by the probe (`probes.s3_ready`): moto starts empty."""
    return Program("s3", (str(moto_server), "-H", HOST, "-p", str(S3_PORT)), S3_PORT, {}, priority=5)


def service_program(service: Service, bin_dir: Path) -> Program:
    return Program(
        service.name,
        (str(bin_dir / service.script),),
        service.port,
        {**common_service_env(), **service.env},
    )
