from __future__ import annotations

from datetime import time
from typing import Annotated

from pydantic import Field, field_validator

from shared.channels import MESSAGING_CHANNELS
from shared.stream_worker import WorkerSettings


class CampaignSettings(WorkerSettings):
    campaign_port: int = 8004  # the API
    campaign_metrics_port: int = 9104  # the worker's /metrics, /healthz, /readyz
    # Faust consumer group and the prefix of its changelog topics.
    campaign_app_id: str = "pd-campaign"
    campaigns_poll_interval_s: float = Field(default=1.0, gt=0)
    tick_interval_s: float = Field(default=1.0, gt=0)  # how often the worker looks for what is due
    # How often the worker hands waiting leads to consultants with capacity (and the leads of
    # consultants made inactive to others).
    lead_pool_interval_s: float = Field(default=5.0, gt=0)
    attribution_window_days: float = Field(default=7.0, gt=0)
    # Messaging channels stay silent between these times, China time (equal times: never).
    quiet_hours_start: time = time(21, 0)
    quiet_hours_end: time = time(9, 0)
    table_dir: str = ".run/campaign-tables"
    # The most marketing messages a channel may carry to one customer a day, all campaigns
    # together (JSON, e.g. {"wecom_1v1": 1}); a channel not named has no such cap.
    channel_daily_caps: dict[str, Annotated[int, Field(ge=1, le=100)]] = Field(default_factory=dict)

    # The programme's global control group: this share of all customers (deterministic by
    # customer) gets no marketing message from any campaign, for the programme's lift.
    global_control_pct: float = Field(default=0.0, ge=0, le=50)

    @field_validator("channel_daily_caps")
    @classmethod
    def _messaging_channels(cls, caps: dict[str, int]) -> dict[str, int]:
        if unknown := set(caps) - set(MESSAGING_CHANNELS):
            raise ValueError(f"not messaging channels: {', '.join(sorted(unknown))}")
        return caps
