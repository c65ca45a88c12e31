from __future__ import annotations

from pydantic import Field

from shared.settings import ServiceSettings


class ScoringSettings(ServiceSettings):
    scoring_port: int = 8002  # the API
    scoring_metrics_port: int = 9102  # the worker's /metrics, /healthz, /readyz
    # Faust consumer group and the prefix of its changelog topics.
    scoring_app_id: str = "pd-scoring"
    # Inputs taken per batch, and how long to wait to fill one.
    batch_max_events: int = Field(default=2000, ge=1)
    batch_within_s: float = Field(default=0.05, gt=0)
    plan_poll_interval_s: float = Field(default=1.0, gt=0)
    # Group membership: short enough that a replacement worker takes over within seconds.
    broker_session_timeout_s: float = 10.0
    broker_heartbeat_interval_s: float = 1.0
    broker_rebalance_timeout_s: float = 20.0
    broker_commit_interval_s: float = 1.0
    table_dir: str = ".run/scoring-tables"
