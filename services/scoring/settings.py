from __future__ import annotations

from pydantic import Field

from shared.stream_worker import WorkerSettings


class ScoringSettings(WorkerSettings):
    scoring_port: int = 8002  # the API
    scoring_metrics_port: int = 9102  # the worker's /metrics, /healthz, /readyz
    # Faust consumer group and the prefix of its changelog topics.
    scoring_app_id: str = "pd-scoring"
    plan_poll_interval_s: float = Field(default=1.0, gt=0)
    # How often the worker looks for customers whose band or activity time alone has moved.
    tick_interval_s: float = Field(default=1.0, gt=0)
    table_dir: str = ".run/scoring-tables"
