"""`pd-scoring-worker` / `python -m services.scoring.worker`: run the scoring worker."""

from __future__ import annotations

import faust

from shared.logging import configure_logging

from .app import create_app
from .settings import ScoringSettings


def main() -> None:
    settings = ScoringSettings()
    configure_logging("scoring-worker", settings.log_level)
    app = create_app(settings)
    worker = faust.Worker(app, loglevel=settings.log_level.lower(), loop=None)
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
