"""`pd-ingest` / `python -m services.ingest`: run the ingest API with settings from the env."""

from __future__ import annotations

import uvicorn

from shared.gc_tuning import tune_gc_for_throughput
from shared.logging import configure_logging
from shared.settings import load_settings

from .api import create_app
from .settings import IngestSettings


def main() -> None:
    settings = load_settings(IngestSettings, "ingest")
    configure_logging("ingest", settings.log_level)
    app = create_app(settings)
    tune_gc_for_throughput()
    uvicorn.run(
        app,
        host=settings.http_host,
        port=settings.ingest_port,
        loop="uvloop",
        http="httptools",
        access_log=False,  # one line per event at thousands/s is noise; metrics count requests
        log_config=None,  # keep our JSON logging
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
