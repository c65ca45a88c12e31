from __future__ import annotations

from pydantic import Field

from shared.stream_worker import WorkerSettings


class TaggingSettings(WorkerSettings):
    tagging_port: int = 8003  # the API
    tagging_metrics_port: int = 9103  # the worker's /metrics, /healthz, /readyz
    # Faust consumer group and the prefix of its changelog topics.
    tagging_app_id: str = "pd-tagging"
    rules_poll_interval_s: float = Field(default=1.0, gt=0)
    table_dir: str = ".run/tagging-tables"
