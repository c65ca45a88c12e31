from __future__ import annotations

from datetime import time

from pydantic import Field

from shared.stream_worker import WorkerSettings


class CampaignSettings(WorkerSettings):
    campaign_port: int = 8004  # the API
    campaign_metrics_port: int = 9104  # the worker's /metrics, /healthz, /readyz
    # Faust consumer group and the prefix of its changelog topics.
    campaign_app_id: str = "pd-campaign"
    campaigns_poll_interval_s: float = Field(default=1.0, gt=0)
    tick_interval_s: float = Field(default=1.0, gt=0)  # how often the worker looks for what is due
    attribution_window_days: float = Field(default=7.0, gt=0)
    # Messaging channels stay silent between these times, China time (equal times: never).
    quiet_hours_start: time = time(21, 0)
    quiet_hours_end: time = time(9, 0)
    table_dir: str = ".run/campaign-tables"
