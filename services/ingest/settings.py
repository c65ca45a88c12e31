from __future__ import annotations

from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.events import IdentityType
from shared.settings import ServiceSettings, weak_secrets

from .api_keys import KeyScope
from .wecom_crypto import CorpKeys


class WeComCallback(BaseModel):
    """A corp's callback settings, as entered in WeCom's admin console (docs/wecom.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    corp_id: str = Field(min_length=1, max_length=64)
    token: str = Field(min_length=1, max_length=32)
    encoding_aes_key: str = Field(min_length=43, max_length=43)

    @field_validator("encoding_aes_key")
    @classmethod
    def _decodes(cls, value: str) -> str:
        CorpKeys("x", "x", value).aes_key()  # raises ValueError with why
        return value

    def keys(self) -> CorpKeys:
        return CorpKeys(self.corp_id, self.token, self.encoding_aes_key)


class IngestSettings(ServiceSettings):
    ingest_port: int = 8001
    # Touchpoint key -> its scope: sources, event types and identity types it may write, and
    # whether it sees customer ids (services/ingest/api_keys.py). Env INGEST_API_KEYS, JSON.
    ingest_api_keys: dict[str, list[str] | KeyScope] = Field(default={"local-touchpoint-key": ["*"]})
    # Secret salt of phone hashes. Set your own in every real deployment, and never change it:
    # a new salt gives every phone a new identity.
    phone_hash_salt: str = "local-dev-salt-change-me"
    default_phone_region: str = "CN"
    # Identifiers of one type one customer may hold, and customers merged into one a UTC day:
    # past them an event is accepted without the links it would add, and listed for review
    # (GET /v1/identity-conflicts). A shared device must not chain-merge strangers.
    identity_limits: dict[IdentityType, Annotated[int, Field(ge=1, le=1000)]] = Field(
        default={
            IdentityType.phone: 3,
            IdentityType.unionid: 2,
            IdentityType.app_user_id: 3,
            IdentityType.wecom_external_userid: 5,
        }
    )
    identity_limit_default: int = Field(default=10, ge=1, le=1000)
    merges_per_customer_per_day: int = Field(default=5, ge=1, le=1000)
    dedupe_ttl_s: int = Field(default=8 * 24 * 3600, ge=7 * 24 * 3600, description="at least 7 days")
    max_body_bytes: int = 2 * 1024 * 1024
    # One event's largest size as sent. Larger ones are refused (413 alone, `too_large` in a
    # batch): the broker refuses records over about 1 MiB, and a refused event would fail its
    # request on every retry.
    max_event_bytes: int = Field(default=512 * 1024, ge=1024, le=900 * 1024)
    max_batch_events: int = 500
    produce_timeout_s: float = 5.0
    max_queued_events: int = 50_000
    # How long a merge's records may wait for an event of the survivor to carry them before the
    # relay sends them alone. Longer than a produce may take, so that the relay does not send
    # again what a send still waiting for its acks carries.
    join_grace_s: float = 30.0
    # How often ingest looks for a new content catalogue (one GET): events accepted from this
    # long after a change take the changed attributes (shared/contents.py).
    contents_poll_interval_s: float = Field(default=1.0, gt=0, le=60)
    # WeCom callbacks (`/v1/wecom/callback`), one entry per corp; none: the endpoint answers 404.
    # Env WECOM_CALLBACKS, JSON: [{"corp_id", "token", "encoding_aes_key"}].
    wecom_callbacks: list[WeComCallback] = Field(default_factory=list, max_length=50)
    # A callback's timestamp may be this far from ingest's clock; a nonce is refused if seen
    # again within it.
    wecom_replay_window_s: int = Field(default=300, ge=10, le=3600)
    # /readyz fails only once the broker or Redis has been unreachable this long: through a blip
    # ingest stays in its Service and answers 503 with Retry-After (0: at the first failure).
    readiness_grace_s: float = Field(default=30.0, ge=0, le=600)

    def unsafe_in_production(self) -> list[str]:
        problems = super().unsafe_in_production()
        problems += weak_secrets("PHONE_HASH_SALT", [self.phone_hash_salt])
        problems += weak_secrets("INGEST_API_KEYS", list(self.ingest_api_keys))
        problems += weak_secrets(
            "WECOM_CALLBACKS", [s for c in self.wecom_callbacks for s in (c.token, c.encoding_aes_key)]
        )
        return problems

    @model_validator(mode="after")
    def _grace_outlasts_a_produce(self) -> Self:
        if self.join_grace_s <= self.produce_timeout_s:
            raise ValueError(
                f"join_grace_s ({self.join_grace_s}) must exceed produce_timeout_s ({self.produce_timeout_s})"
            )
        return self
