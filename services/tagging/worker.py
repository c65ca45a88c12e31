"""`pd-tagging-worker` / `python -m services.tagging.worker`: run the tagging worker."""

from __future__ import annotations

import asyncio
from pathlib import Path

import faust

from shared.kafka import ensure_topics
from shared.logging import configure_logging, logging_dict_config
from shared.redis import create_redis
from shared.topics import contract_topics

from .app import create_app
from .rule_store import load_rules
from .rules import RuleSet
from .settings import TaggingSettings
from .topics import worker_owned_topics


async def _rules_in_force(settings: TaggingSettings) -> RuleSet:
    redis = create_redis(settings.redis_url)
    try:
        return await load_rules(redis)
    finally:
        await redis.aclose()


def main() -> None:
    settings = TaggingSettings()
    configure_logging("tagging-worker", settings.log_level)
    topics = contract_topics(settings.topic_partitions) + worker_owned_topics(settings)
    ensure_topics(settings.kafka_bootstrap_servers, topics)
    Path(settings.table_dir).mkdir(parents=True, exist_ok=True)  # Faust's datadir must exist
    app = create_app(settings, rules=asyncio.run(_rules_in_force(settings)))
    # Faust sets logging up again when it starts: hand it ours.
    logging_config = logging_dict_config("tagging-worker", settings.log_level)
    worker = faust.Worker(app, loglevel=settings.log_level.lower(), logging_config=logging_config)
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
