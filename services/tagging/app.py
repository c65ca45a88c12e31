"""`create_app(settings)`: the tagging worker's Faust app, wired.

One handler takes events, scores, merges and handovers together, in batches; a timer takes
up tag rules ops change; the worker's web server answers /metrics, /healthz and /readyz on 9103.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import faust
from prometheus_client import CollectorRegistry

from shared.metrics import process_registry
from shared.record_table import RecordCodec, record_table
from shared.stream_worker import batch_consumer, worker_parts

from .agents import Tagger
from .batch import ProfileRecord, Rules
from .rules import RuleSet
from .settings import TaggingSettings
from .thresholds import TaggingThresholds
from .topics import tagging_topics


def _utc_now() -> datetime:
    return datetime.now(UTC)


def create_app(
    settings: TaggingSettings,
    registry: CollectorRegistry | None = None,
    rules: RuleSet | None = None,
    clock: Callable[[], datetime] = _utc_now,
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
    codec = RecordCodec(ProfileRecord)
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
        partitions=settings.topic_partitions,
        owned_partitions=lambda: {tp.partition for tp in app.assignor.assigned_actives()},
        clock=clock,
    )
    batch_consumer(parts, topics.inputs, settings, tagger.tag)

    @app.timer(interval=settings.rules_poll_interval_s)
    async def poll_rules() -> None:
        if app.tables.recovery.completed.is_set():  # re-derive only a complete table
            await tagger.apply_rules()

    return app
