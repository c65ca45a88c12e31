"""`pd-tagging-worker` / `python -m services.tagging.worker`: run the tagging worker."""

from __future__ import annotations

import asyncio

from shared.clock import clock_of
from shared.redis import create_redis
from shared.settings import load_settings
from shared.stream_worker import run_worker

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
    settings = load_settings(TaggingSettings, "tagging-worker")
    # The rules in force when the worker starts, so that replayed inputs see the same rules.
    run_worker(
        "tagging-worker",
        settings,
        worker_owned_topics(settings),
        settings.table_dir,
        lambda: create_app(settings, rules=asyncio.run(_rules_in_force(settings)), clock=clock_of(settings)),
    )


if __name__ == "__main__":
    main()
