"""Each customer's consents as ops read them: per messaging channel, granted or not, and when.

The worker keeps a customer's consents in their journey (consent.py). With each batch it writes
those of the customers whose consents the batch changed to `pd:campaign:customer:{id}:consent`:
a small JSON of the channels the customer said something about, set whole, so a replayed batch
writes the same value again. The API lists every messaging channel (shared/channels.py): a
channel the customer never named, or a customer the worker never saw, is not granted.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson
from pydantic import BaseModel, Field
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from shared.channels import MESSAGING_CHANNELS, consent_key

from .consent import UNDATED, Consent

Consents = Mapping[str, Consent]


class ChannelConsent(BaseModel):
    granted: bool
    at: datetime | None = Field(
        description="when the customer said it (the event's occurred_at); null if they never did, "
        "or for a word recorded before words were dated"
    )


class CustomerConsent(BaseModel):
    customer_id: str
    channels: dict[str, ChannelConsent] = Field(description="every messaging channel, in a fixed order")


NEVER_SAID = ChannelConsent(granted=False, at=None)


def stored(consents: Consents) -> bytes:
    """The JSON written for a customer: only the channels they said something about."""
    return orjson.dumps(
        {
            channel: {"granted": word.granted, "at": None if word.at == UNDATED else word.at.isoformat()}
            for channel, word in sorted(consents.items())
        }
    )


def customer_consent(customer_id: str, raw: bytes | None) -> CustomerConsent:
    said: dict[str, Any] = orjson.loads(raw) if raw else {}
    return CustomerConsent(
        customer_id=customer_id,
        channels={
            channel: ChannelConsent.model_validate(said[channel]) if channel in said else NEVER_SAID
            for channel in MESSAGING_CHANNELS
        },
    )


def queue_consents(pipe: Pipeline, consents: Mapping[str, Consents]) -> None:
    """Queue a SET per customer whose consents changed (customer id -> their consents now)."""
    for customer_id, theirs in consents.items():
        pipe.set(consent_key(customer_id), stored(theirs))


async def read_consent(redis: Redis, customer_id: str) -> CustomerConsent:
    return customer_consent(customer_id, await redis.get(consent_key(customer_id)))
