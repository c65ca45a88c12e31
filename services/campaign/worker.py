"""`pd-campaign-worker` / `python -m services.campaign.worker`: run the campaign worker."""

from __future__ import annotations

from shared.clock import clock_of
from shared.settings import load_settings
from shared.stream_worker import run_worker

from .app import create_app
from .settings import CampaignSettings
from .topics import worker_owned_topics


def main() -> None:
    settings = load_settings(CampaignSettings, "campaign-worker")
    run_worker(
        "campaign-worker",
        settings,
        worker_owned_topics(settings),
        settings.table_dir,
        lambda: create_app(settings, clock=clock_of(settings)),
    )


if __name__ == "__main__":
    main()
