"""The best peer doing the scoring job (issue 20's second worker reference): the scoring worker's
job written on Quix Streams, so that `bench.scoring` can say how far from a well-kept Python
stream processor the worker is, per CPU-second.

The same job, through the same domain code: each touchpoint event decoded as the worker decodes
it (`inputs.decode_touchpoint`), folded into the customer's row by the worker's own batch step
(`batch.score_batch`: ledger dedupe by event id, score, points, latest-event entry, emission
rule), the row kept in Quix's state (RocksDB, with its changelog topic), the chain record on
`scored.inputs.v1` and emissions on `intent.scores.v1`, and the same Redis read model written by
`read_model.write_records` at each checkpoint, which comes every BATCH_MAX_EVENTS inputs (the
worker's batch, after which it commits) or half a second. Quix folds one message at a time (its
model), so each input is a batch of one. Not covered, as the bench's events need none of it:
merges and their handovers, decay ticks, erasures, dead letters.

Quix Streams pins pydantic < 2.14 and pydantic-settings < 2.16, below our constraints: it runs in
a venv of its own (bench/quix-requirements.txt, installed by `stack.prereqs.ensure_quix` under
.run/tools/quix), importing only our domain modules, which need neither Faust nor FastAPI.

Same settings as the other references (the scoring worker's environment); /metrics and /readyz
as every worker's, the inputs counted when their checkpoint has written them, so
bench/worker_bench.py measures it like the worker. Run as `python -m bench.quix_scoring`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple

import orjson
from prometheus_client import CollectorRegistry
from pydantic import TypeAdapter
from pydantic_settings import BaseSettings, SettingsConfigDict
from quixstreams import Application, message_context
from quixstreams.kafka import Producer
from quixstreams.sinks import BatchingSink, SinkBatch
from quixstreams.state import State
from redis.asyncio import Redis

from services.scoring import read_model
from services.scoring.batch import CustomerRecord, score_batch
from services.scoring.inputs import decode_touchpoint
from services.scoring.plan import ScoringPlan, default_plan
from shared.fold import Delivery
from shared.metrics import CONTENT_TYPE, render
from shared.record_json import encode_record
from shared.topics import INTENT_SCORES, SCORED_INPUTS, TOUCHPOINT_EVENTS
from shared.worker_metrics import WorkerMetrics

SERVICE = "peer"  # the `service` label bench/worker_bench.py reads for the peer
CHECKPOINT_S = 0.5  # at the latest; the worker's commit timer runs as often
ROW = TypeAdapter(CustomerRecord)
PLAN = default_plan()  # the worker's until ops put another: the bench never does


class PeerSettings(BaseSettings):
    """What the peer reads of the scoring worker's environment (its settings module needs Faust)."""

    model_config = SettingsConfigDict(extra="ignore")

    kafka_bootstrap_servers: str
    redis_url: str
    scoring_app_id: str
    scoring_metrics_port: int
    batch_max_events: int = 2000
    table_dir: str = ".run/quix-state"
    bare_input_topic: str = TOUCHPOINT_EVENTS
    # The worker's group timings (the benches use the tests' short ones). librdkafka's rebalance
    # timeout is max.poll.interval.ms, and Tansu holds a first JoinGroup that long.
    broker_session_timeout_s: float = 10.0
    broker_heartbeat_interval_s: float = 3.0
    broker_rebalance_timeout_s: float = 60.0
    quix_loglevel: str = "WARNING"  # DEBUG shows Quix's and librdkafka's view of the group


class Folded(NamedTuple):
    """What one input did: the customer's new row, when it is next due, its latest-event entry,
    and the records to publish (topic, customer, value)."""

    row: CustomerRecord | None
    due: dict[str, datetime | None]
    latest_events: list[tuple[str, bytes, float]]
    outputs: list[tuple[str, str, bytes]]


class Effects(BatchingSink):
    """At each checkpoint, a partition's effects as the worker makes a batch's: the read model
    written to Redis, then the chain and emissions published and acknowledged. Only then does
    Quix commit the checkpoint. (One sink, not a branch per output: Quix copies every value into
    each branch, with pickle, which cost more than the fold itself.)"""

    def __init__(self, redis_url: str, plan: ScoringPlan, producer: Producer, metrics: WorkerMetrics) -> None:
        super().__init__()
        self._loop = asyncio.new_event_loop()
        self._redis = Redis.from_url(redis_url)
        self._plan = plan
        self._producer = producer
        self._metrics = metrics

    def write(self, batch: SinkBatch) -> None:
        began = time.perf_counter()
        records: dict[str, CustomerRecord] = {}
        due: dict[str, datetime | None] = {}
        latest_events: list[tuple[str, bytes, float]] = []
        outputs: list[tuple[str, str, bytes]] = []
        for item in batch:
            folded: Folded = item.value
            if folded.row is not None:
                records[folded.row.score.customer_id] = folded.row
            due.update(folded.due)
            latest_events += folded.latest_events
            outputs += folded.outputs
        now = datetime.now(UTC)
        write = read_model.write_records(self._redis, records.values(), self._plan, now, due, latest_events)
        self._loop.run_until_complete(write)
        for topic, customer_id, value in outputs:
            self._producer.produce(topic, value, customer_id.encode())
        self._producer.flush()
        self._metrics.count({"processed": batch.size})
        self._metrics.batch_seconds.labels(SERVICE).observe(time.perf_counter() - began)


def score(raw: bytes, _key: Any, timestamp_ms: int, _headers: Any, state: State) -> Folded:
    """One input folded into the customer's row (kept in Quix's state), by the worker's batch step."""
    context = message_context()
    delivery = Delivery(
        f"{context.topic}/{context.partition}",
        context.offset,
        decode_touchpoint(raw),
        raw,
        timestamp_ms / 1000,
    )
    stored = state.get("row")
    before = ROW.validate_python(stored) if stored is not None else None
    outcome = score_batch([delivery], lambda _: before, PLAN, datetime.now(UTC))
    outputs = [(SCORED_INPUTS, customer_id, value) for customer_id, value in outcome.chain]
    outputs += [(INTENT_SCORES, customer_id, value) for customer_id, value in outcome.scores]
    row = next(iter(outcome.records.values()), None)
    if row is not None:
        # The row's JSON as the worker's changelog has it, embedded as it is in Quix's own JSON.
        state.set("row", orjson.Fragment(encode_record(row)))
    return Folded(row, outcome.due, outcome.latest_events, outputs)


def serve_metrics(registry: CollectorRegistry, port: int) -> None:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body, kind = (
                (render(registry), CONTENT_TYPE) if self.path == "/metrics" else (b"{}", "application/json")
            )
            self.send_response(200 if self.path in ("/metrics", "/readyz") else 404)
            self.send_header("Content-Type", kind)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()


def build(settings: PeerSettings, metrics: WorkerMetrics) -> Application:
    app = Application(
        broker_address=settings.kafka_bootstrap_servers,
        consumer_group=settings.scoring_app_id,
        auto_offset_reset="earliest",
        commit_every=settings.batch_max_events,
        commit_interval=CHECKPOINT_S,
        state_dir=settings.table_dir,
        processing_guarantee="at-least-once",
        loglevel=settings.quix_loglevel,
        consumer_extra_config={
            "session.timeout.ms": int(settings.broker_session_timeout_s * 1000),
            "heartbeat.interval.ms": int(settings.broker_heartbeat_interval_s * 1000),
            "max.poll.interval.ms": int(settings.broker_rebalance_timeout_s * 1000),
        },
    )
    events = app.topic(settings.bare_input_topic, value_deserializer="bytes", key_deserializer="str")
    effects = Effects(settings.redis_url, PLAN, app.get_producer(), metrics)
    app.dataframe(events).apply(score, stateful=True, metadata=True).sink(effects)
    return app


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    settings = PeerSettings()
    registry = CollectorRegistry()
    metrics = WorkerMetrics(SERVICE, registry)
    serve_metrics(registry, settings.scoring_metrics_port)
    build(settings, metrics).run()


if __name__ == "__main__":
    main()
