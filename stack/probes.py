"""Readiness checks of the stack's processes. Each returns None when ready, else why not."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import redis
from kafka import KafkaAdminClient
from kafka.errors import KafkaConfigurationError, KafkaError

from .processes import BOOTSTRAP_SERVERS, HOST, REDIS_PORT, S3_BUCKET, S3_PORT, SERVICES

Probe = Callable[[], str | None]


def broker_ready() -> str | None:
    """The broker answers a metadata request (a listening socket alone is not enough)."""
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=BOOTSTRAP_SERVERS, request_timeout_ms=3000, bootstrap_timeout_ms=2000
        )
    except KafkaConfigurationError:
        raise  # our bug, not a broker that is still starting
    except (KafkaError, OSError) as error:
        return f"broker does not answer: {type(error).__name__}"
    try:
        admin.list_topics()
    except (KafkaError, OSError) as error:
        return f"metadata request failed: {type(error).__name__}"
    finally:
        admin.close()
    return None


def redis_ready() -> str | None:
    client = redis.Redis(host=HOST, port=REDIS_PORT, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as error:
        return f"ping failed: {type(error).__name__}"
    finally:
        client.close()
    return None


def s3_ready(port: int = S3_PORT) -> str | None:
    """The object store answers and holds the broker's bucket, which is created when missing (s3rver
    is told to create it; moto starts empty). Both stores take unsigned requests locally."""
    bucket = f"http://{HOST}:{port}/{S3_BUCKET}"
    try:
        if httpx.head(bucket, timeout=2).status_code == 404:
            httpx.put(bucket, timeout=2).raise_for_status()
    except httpx.HTTPError as error:
        return f"the S3 store does not answer: {type(error).__name__}"
    return None


def http_ready(url: str) -> Probe:
    def probe() -> str | None:
        try:
            response = httpx.get(url, timeout=2)
        except httpx.HTTPError as error:
            return f"{url}: {type(error).__name__}"
        if response.status_code != 200:
            return f"{url}: {response.status_code} {response.text[:200]}"
        return None

    return probe


def probes() -> dict[str, Probe]:
    """Every program's probe, by program name, in start order."""
    return {
        "s3": s3_ready,
        "tansu": broker_ready,
        "redis": redis_ready,
        **{service.name: http_ready(service.ready_url) for service in SERVICES},
    }
