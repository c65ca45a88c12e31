"""Topic creation against the real broker: by the policy the settings give, never touching a
topic that exists (an SRE's), and saying so when its partition count is not the configured one."""

from __future__ import annotations

import logging

import pytest
from kafka.admin import KafkaAdminClient

from shared.kafka import ensure_topics
from shared.topics import TopicPolicy, TopicSpec
from tests.conftest import Backends
from tests.factories import unique

pytestmark = pytest.mark.integration


def test_topics_are_created_once_by_policy_and_an_existing_one_is_left_alone(
    backends: Backends, caplog: pytest.LogCaptureFixture
) -> None:
    mine, theirs = unique("policy"), unique("sre-made")
    bootstrap = backends.kafka_bootstrap_servers
    assert ensure_topics(bootstrap, [TopicSpec(theirs, 2)]) == [theirs]  # as an SRE made it
    policy = TopicPolicy(replication_factor=-1, min_insync_replicas=1)
    with caplog.at_level(logging.WARNING, logger="shared.kafka"):
        created = ensure_topics(bootstrap, [TopicSpec(mine, 3), TopicSpec(theirs, 3)], policy)
    assert created == [mine]
    assert f"topic {theirs} has 2 partitions, not the 3 configured" in caplog.text
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        described = {t.get("topic") or t["name"]: t for t in admin.describe_topics([mine, theirs])}
    finally:
        admin.close()
    assert len(described[mine]["partitions"]) == 3 and len(described[theirs]["partitions"]) == 2
    # -1: the broker's default replication (one replica on the single local broker).
    assert {
        len(p["replicas"]) if "replicas" in p else len(p["replica_nodes"])
        for p in described[mine]["partitions"]
    } == {1}
    assert ensure_topics(bootstrap, [TopicSpec(mine, 3)], policy) == []  # once
