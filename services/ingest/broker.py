"""The ingest process's link to Kafka: a producer that is (re)started in the background.

Ingest starts and answers /healthz even while the broker is away; until the producer is up,
sends fail fast with BrokerUnavailable (→ 503) and /readyz says why.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from shared.kafka import KeyPartitions, OutgoingRecord, create_producer, ensure_topics, send_batched
from shared.kafka_security import PLAINTEXT, KafkaSecurity
from shared.topics import BROKER_DEFAULTS, TopicPolicy, TopicSpec

from .pipeline import BrokerUnavailable

log = logging.getLogger(__name__)


class BrokerLink:
    def __init__(
        self,
        bootstrap_servers: str,
        request_timeout_s: float,
        topics: list[TopicSpec],
        policy: TopicPolicy = BROKER_DEFAULTS,
        security: KafkaSecurity = PLAINTEXT,
    ) -> None:
        self._bootstrap_servers = bootstrap_servers
        self._request_timeout_s = request_timeout_s
        self._topics = topics
        self._policy = policy
        self._security = security
        self._producer: AIOKafkaProducer | None = None
        self._partitions = KeyPartitions()

    async def connect(self, retry_interval_s: float = 1.0) -> None:
        """Start the producer, retrying until the broker answers; then make sure our topics exist."""
        while self._producer is None:
            producer = create_producer(self._bootstrap_servers, self._request_timeout_s, self._security)
            try:
                await producer.start()
            except KafkaError as error:
                await producer.stop()
                log.warning("broker not reachable yet at %s: %r", self._bootstrap_servers, error)
                await asyncio.sleep(retry_interval_s)  # backoff between attempts
                continue
            try:
                await asyncio.to_thread(
                    ensure_topics, self._bootstrap_servers, self._topics, self._policy, self._security
                )
            except Exception as error:  # producing auto-creates on brokers that allow it
                log.warning("could not ensure topics: %r", error)
            self._producer = producer
            log.info("connected to broker at %s", self._bootstrap_servers)

    async def send(self, topic: str, key: bytes, value: bytes) -> asyncio.Future[object]:
        """Queue one record; the returned future resolves when the broker acknowledged it."""
        if self._producer is None:
            raise BrokerUnavailable("not connected to the broker yet")
        try:
            return await self._producer.send(topic, key=key, value=value)
        except KafkaError as error:
            raise BrokerUnavailable(repr(error)) from error

    async def send_keyed(
        self, topic: str, records: list[tuple[bytes, bytes | None]]
    ) -> list[asyncio.Future[object]]:
        """Queue (key, value) records in record batches per partition; one ack future per record
        (a value of None: a tombstone)."""
        if self._producer is None:
            raise BrokerUnavailable("not connected to the broker yet")
        outgoing = [OutgoingRecord(topic, key, value) for key, value in records]
        try:
            return await send_batched(self._producer, outgoing, self._partitions)
        except KafkaError as error:
            raise BrokerUnavailable(repr(error)) from error

    async def check(self) -> None:
        """Readiness: connected, and the broker answers a metadata request."""
        if self._producer is None:
            raise BrokerUnavailable("not connected to the broker yet")
        metadata = await self._producer.client.fetch_all_metadata()
        if not metadata.brokers():
            raise BrokerUnavailable("broker returned no brokers in metadata")

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
