"""Settings every process shares. Each service extends `ServiceSettings` with its own fields.

Values come from the environment (names are the upper-cased field names, e.g.
`KAFKA_BOOTSTRAP_SERVERS`). Settings are built in entrypoints, never at import time.
"""

from __future__ import annotations

import sys
from typing import Annotated, Literal, Self, TypeVar

from pydantic import AwareDatetime, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from shared.kafka_security import KafkaSecurity, SaslMechanism, SecurityProtocol
from shared.ops_roles import ops_identities
from shared.topics import TopicPolicy

# The local stack's well-known secrets: fine on a laptop, refused in production.
DEVELOPMENT_SECRETS = frozenset(
    {
        "local-ops-token",
        "local-touchpoint-key",
        "local-dev-salt-change-me",
        "local-console-session-secret-not-for-production",
        "local-wecom-token",
        "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",  # the local stack's EncodingAESKey
        "local-wecom-secret",
    }
)
MIN_SECRET_LENGTH = 16


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    kafka_bootstrap_servers: str = "localhost:9092"
    redis_url: str = "redis://localhost:6379/0"
    topic_partitions: int = Field(default=3, ge=1, description="partitions of the topics we create")
    # Replication of the topics we create: -1 takes the broker's default.replication.factor
    # (production brokers: 3); min.insync.replicas None takes the broker's default (set 2 with a
    # replication factor of 3: an acknowledged record is then on two brokers at least).
    topic_replication_factor: int = Field(default=-1, ge=-1, le=10)
    topic_min_insync_replicas: int | None = Field(default=None, ge=1, le=10)
    # How every Kafka client authenticates (shared/kafka_security.py): PLAINTEXT, SSL,
    # SASL_PLAINTEXT or SASL_SSL; SASL with PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 and a user;
    # TLS checked against KAFKA_SSL_CAFILE (unset: the system's CAs).
    kafka_security_protocol: SecurityProtocol = "PLAINTEXT"
    kafka_sasl_mechanism: SaslMechanism | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: str | None = None
    kafka_ssl_cafile: str | None = None
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
    # `production` (the container image's default) refuses the local stack's secrets and weak
    # ones: a process would rather not start than run with a salt or token everyone knows.
    deployment: Literal["local", "production"] = "local"

    @field_validator("ops_tokens", mode="before")
    @classmethod
    def _split_tokens(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(token.strip() for token in value.split(",") if token.strip())
        return value

    @model_validator(mode="after")
    def _safe_for_production(self) -> Self:
        if self.deployment == "production" and (problems := self.unsafe_in_production()):
            raise ValueError("; ".join(problems))
        return self

    @model_validator(mode="after")
    def _replicas_fit(self) -> Self:
        factor, least = self.topic_replication_factor, self.topic_min_insync_replicas
        if factor == 0:
            raise ValueError("TOPIC_REPLICATION_FACTOR is -1 (the broker's default) or at least 1")
        if least is not None and factor > 0 and least > factor:
            raise ValueError(
                f"TOPIC_MIN_INSYNC_REPLICAS ({least}) above TOPIC_REPLICATION_FACTOR ({factor}): "
                "no write could succeed"
            )
        return self

    @model_validator(mode="after")
    def _sasl_complete(self) -> Self:
        sasl = self.kafka_security.sasl
        given = [self.kafka_sasl_mechanism, self.kafka_sasl_username, self.kafka_sasl_password]
        if sasl and not all(given):
            raise ValueError(
                "KAFKA_SECURITY_PROTOCOL SASL_* needs KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME and "
                "KAFKA_SASL_PASSWORD"
            )
        if not sasl and any(given):
            raise ValueError(
                "KAFKA_SASL_* settings go with KAFKA_SECURITY_PROTOCOL SASL_PLAINTEXT or SASL_SSL"
            )
        return self

    @property
    def kafka_security(self) -> KafkaSecurity:
        return KafkaSecurity(
            self.kafka_security_protocol,
            self.kafka_sasl_mechanism,
            self.kafka_sasl_username,
            self.kafka_sasl_password,
            self.kafka_ssl_cafile,
        )

    @property
    def topic_policy(self) -> TopicPolicy:
        return TopicPolicy(self.topic_replication_factor, self.topic_min_insync_replicas)

    def unsafe_in_production(self) -> list[str]:
        """What is unsafe in these settings outside the local stack; services add their own."""
        return weak_secrets("OPS_TOKENS", [identity.token for identity in ops_identities(self.ops_tokens)])


def weak_secrets(setting: str, secrets: list[str]) -> list[str]:
    problems = []
    for secret in secrets:
        if secret in DEVELOPMENT_SECRETS or "change-me" in secret or "EXAMPLE-ONLY" in secret:
            problems.append(
                f"{setting} holds the local stack's development secret {secret[:6]}…: set your own"
            )
        elif len(secret) < MIN_SECRET_LENGTH:
            problems.append(f"{setting} holds a secret shorter than {MIN_SECRET_LENGTH} characters")
    return problems


S = TypeVar("S", bound=ServiceSettings)


def load_settings(settings_type: type[S], process: str) -> S:
    """The settings from the environment; a refusal is one line per problem and exit code 2,
    not a traceback."""
    try:
        return settings_type()
    except ValidationError as error:
        for problem in error.errors():
            where = ".".join(str(part) for part in problem["loc"]).upper() or "settings"
            message = problem["msg"].removeprefix("Value error, ")
            print(f"{process}: refusing to start: {where}: {message}", file=sys.stderr)
        raise SystemExit(2) from None
