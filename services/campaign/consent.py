"""Consent per channel, from the customer's own events. Contact only with consent.

`consent.granted` / `consent.revoked` name a channel: a messaging `Channel` value, `wecom` for both
WeCom channels or `all` for every messaging channel (shared/channels.py; ingest refuses others).
Adding the brand's WeCom account (`wecom.friend_added`) consents to WeCom messages; deleting it
(`wecom.friend_deleted`) revokes that consent.

Per channel, the word the customer said last wins — by `occurred_at`, not by arrival: a grant
back-filled by a touchpoint after a newer revocation must not bring the channel back. Two words
at the same moment: the revocation wins (the safe side).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BeforeValidator

from shared.channels import WECOM_CHANNELS, consented_channels

# What a consent recorded before words were dated is taken to date from: any dated word overrides it.
UNDATED = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Consent:
    """The customer's latest word on one channel."""

    granted: bool
    at: datetime  # the occurred_at of the event that said it


def _undated(value: Any) -> Any:
    # Journeys written before consents were dated hold a bare bool per channel: read them back
    # (from the changelog, after an upgrade) rather than fail the worker's recovery.
    return Consent(value, UNDATED) if isinstance(value, bool) else value


# A channel's consent as journeys store it (shared/record_table.py reads rows back with pydantic).
StoredConsent = Annotated[Consent, BeforeValidator(_undated)]


def _overrides(word: Consent, current: Consent | None) -> bool:
    if current is None or word.at > current.at:
        return True
    return word.at == current.at and not word.granted and current.granted  # a tie: revocation wins


def _said(consents: Mapping[str, Consent], words: Iterable[tuple[str, Consent]]) -> dict[str, Consent]:
    """The consents after these words, each kept only where it is the latest for its channel."""
    after = dict(consents)
    for channel, word in words:
        if _overrides(word, after.get(channel)):
            after[channel] = word
    return after


def consents_after(
    consents: Mapping[str, Consent], event_type: str, channel: str | None, occurred_at: datetime
) -> dict[str, Consent]:
    """The customer's consents after one of their events (unchanged for most events, and for a
    word older than the one the channel already has)."""
    if event_type in ("wecom.friend_added", "wecom.friend_deleted"):
        word = Consent(event_type == "wecom.friend_added", occurred_at)
        return _said(consents, ((named, word) for named in WECOM_CHANNELS))
    if event_type in ("consent.granted", "consent.revoked"):
        word = Consent(event_type == "consent.granted", occurred_at)
        return _said(consents, ((named, word) for named in consented_channels(channel)))
    return dict(consents)


def merge_consents(survivor: Mapping[str, Consent], merged: Mapping[str, Consent]) -> dict[str, Consent]:
    """Two customers found to be one person: per channel, the later word of either stands."""
    return _said(survivor, merged.items())
