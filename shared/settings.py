"""Settings every process shares. Each service extends `ServiceSettings` with its own fields.

Values come from the environment (names are the upper-cased field names, e.g.
`KAFKA_BOOTSTRAP_SERVERS`). Settings are built in entrypoints, never at import time.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AwareDatetime, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    kafka_bootstrap_servers: str = "localhost:9092"
    redis_url: str = "redis://localhost:6379/0"
    topic_partitions: int = Field(default=3, ge=1, description="partitions of the topics we create")
    log_level: str = "INFO"
    http_host: str = "127.0.0.1"
    # Bearer tokens for the ops APIs; env OPS_TOKENS is comma-separated.
    ops_tokens: Annotated[tuple[str, ...], NoDecode] = ("local-ops-token",)
    # Tests only (shared/clock.py): decide by a clock running this many times faster than real
    # time from `clock_epoch` on, so that decay and dormancy can be watched in seconds.
    clock_speed: float = Field(default=1.0, gt=0)
    clock_epoch: AwareDatetime | None = None
    # Where the npm-installed browser assets are (shared/web_assets.py); unset: the repository's.
    web_assets_dir: str | None = None

    @field_validator("ops_tokens", mode="before")
    @classmethod
    def _split_tokens(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(token.strip() for token in value.split(",") if token.strip())
        return value
