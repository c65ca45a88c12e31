"""`pd-scoring-worker` / `python -m services.scoring.worker`: run the scoring worker."""

from __future__ import annotations

from shared.clock import clock_of
from shared.settings import load_settings
from shared.stream_worker import run_worker

from .app import create_app
from .settings import ScoringSettings
from .topics import worker_owned_topics


def main() -> None:
    settings = load_settings(ScoringSettings, "scoring-worker")
    run_worker(
        "scoring-worker",
        settings,
        worker_owned_topics(settings),
        settings.table_dir,
        lambda: create_app(settings, clock=clock_of(settings)),
    )


if __name__ == "__main__":
    main()
