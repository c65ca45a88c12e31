"""`create_app(settings)`: the tagging worker's Faust app, wired.

One handler takes events, scores, merges and handovers together, in batches; a timer takes
up tag rules ops change; the worker's web server answers /metrics, /healthz and /readyz on 9103.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import faust
from prometheus_client import CollectorRegistry

from shared.clock import utc_now
from shared.faust_runtime import owned_partitions, recovery_done
from shared.metrics import process_registry
from shared.record_table import RecordCodec, record_table
from shared.stream_worker import batch_consumer, retrying, worker_parts

from . import read_model
from .agents import Tagger
from .batch import ProfileRecord, Rules
from .rules import RuleSet
from .settings import TaggingSettings
from .thresholds import TaggingThresholds
from .topics import tagging_topics


def create_app(
    settings: TaggingSettings,
    registry: CollectorRegistry | None = None,
    rules: RuleSet | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> faust.App:
    registry = registry or process_registry()
    parts = worker_parts(
        "tagging",
        settings.tagging_app_id,
        settings,
        metrics_port=settings.tagging_metrics_port,
        table_dir=settings.table_dir,
        registry=registry,
    )
    app = parts.app
    topics = tagging_topics(app, settings)
    codec = RecordCodec(ProfileRecord, lambda row: row.profile.customer_id)
    table = record_table(app, "profiles", codec, settings.topic_partitions, help="tagging state")
    tagger = Tagger(
        table=table,
        codec=codec,
        topics=topics,
        redis=parts.redis,
        sender=parts.sender,
        # The rules in force when the worker starts (worker.py loads them), so that a restarted
        # worker replays its inputs under the same rules as before.
        rules=Rules(TaggingThresholds(), rules or RuleSet(version=0)),
        metrics=parts.metrics,
        watch=parts.watch,
        owned_partitions=lambda: owned_partitions(app),
        clock=clock,
        max_record_bytes=settings.max_record_bytes,
    )
    batch_consumer(parts, topics.inputs, settings, tagger.tag)

    @app.task
    async def backfill_segments() -> None:
        # Customers written before the scored segment sets existed join them (read_model.py).
        async def backfill() -> None:
            await read_model.backfill_scored_segments(parts.redis)

        await retrying("segment backfill", backfill)

    @app.timer(interval=settings.rules_poll_interval_s)
    async def poll_rules() -> None:
        if recovery_done(app):  # re-derive only a complete table
            await tagger.apply_rules()

    return app
