"""`pd-scoring-worker` / `python -m services.scoring.worker`: run the scoring worker."""

from __future__ import annotations

from pathlib import Path

import faust

from shared.kafka import ensure_topics
from shared.logging import configure_logging, logging_dict_config
from shared.topics import contract_topics

from .app import create_app
from .settings import ScoringSettings
from .topics import worker_owned_topics


def main() -> None:
    settings = ScoringSettings()
    configure_logging("scoring-worker", settings.log_level)
    topics = contract_topics(settings.topic_partitions) + worker_owned_topics(settings)
    ensure_topics(settings.kafka_bootstrap_servers, topics)
    Path(settings.table_dir).mkdir(parents=True, exist_ok=True)  # Faust's datadir must exist
    app = create_app(settings)
    # Faust sets logging up again when it starts: hand it ours.
    logging_config = logging_dict_config("scoring-worker", settings.log_level)
    worker = faust.Worker(app, loglevel=settings.log_level.lower(), logging_config=logging_config)
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
