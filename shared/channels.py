"""The channels a consent event may name, for ingest (which refuses any other) and the campaign worker.

They live in shared/ because ingest's validation (shared/events.py) may not import services/;
the campaign worker's `Channel` (services/campaign/definitions.py) must agree with
`MESSAGING_CHANNELS`, which tests/unit/test_campaign_domain.py checks.
"""

from __future__ import annotations

import orjson

from shared.redis import KEY_PREFIX

# Every channel that sends the customer a message: each needs the customer's consent.
MESSAGING_CHANNELS: tuple[str, ...] = (
    "wecom_1v1",
    "wecom_group",
    "official_account",
    "mini_program",
    "app_push",
    "sms",
)
WECOM_CHANNELS: tuple[str, ...] = ("wecom_1v1", "wecom_group")
# Names a customer's word may give to several channels at once.
CONSENT_GROUPS: dict[str, tuple[str, ...]] = {"wecom": WECOM_CHANNELS, "all": MESSAGING_CHANNELS}
CONSENT_CHANNELS: frozenset[str] = frozenset(MESSAGING_CHANNELS) | frozenset(CONSENT_GROUPS)
CONSENT_EVENT_TYPES: frozenset[str] = frozenset({"consent.granted", "consent.revoked"})


def consent_key(customer_id: str) -> str:
    """The customer's consents as the campaign worker last saw them (services/campaign/consent_view.py):
    JSON {channel: {"granted", "at"}}, for ops and for what sends a message (the WeCom sender)."""
    return f"{KEY_PREFIX}campaign:customer:{customer_id}:consent"


def revoked(stored: bytes | None, channel: str) -> bool:
    """Whether consents stored at `consent_key` say the customer took `channel` back (a word the
    campaign worker has not written yet is no revocation: WeCom's own is the friendship)."""
    said = orjson.loads(stored) if stored else {}
    word = said.get(channel) if isinstance(said, dict) else None
    return isinstance(word, dict) and word.get("granted") is False


def consented_channels(name: str | None) -> tuple[str, ...]:
    """The messaging channels a consent event's `channel` names (case and spaces aside); () for none."""
    if not name:
        return ()
    name = name.strip().lower()
    if name in CONSENT_GROUPS:
        return CONSENT_GROUPS[name]
    return (name,) if name in MESSAGING_CHANNELS else ()
