"""Consent per channel, from the customer's own events. Contact only with consent.

`consent.granted` / `consent.revoked` name a channel (a `Channel` value, or `wecom` for both WeCom
channels); adding the brand's WeCom account (`wecom.friend_added`) consents to WeCom messages.
The latest word wins: a revocation stands until a new grant.
"""

from __future__ import annotations

from collections.abc import Mapping

from .definitions import Channel

WECOM = (Channel.wecom_1v1.value, Channel.wecom_group.value)


def channels_named(name: str | None) -> tuple[str, ...]:
    if not name:
        return ()
    name = name.strip().lower()
    if name == "wecom":
        return WECOM
    return (name,) if name in Channel.__members__ else ()


def consents_after(consents: Mapping[str, bool], event_type: str, channel: str | None) -> dict[str, bool]:
    """The customer's consents after one of their events (unchanged for most events)."""
    if event_type == "wecom.friend_added":
        return {**consents, **dict.fromkeys(WECOM, True)}
    if event_type in ("consent.granted", "consent.revoked"):
        granted = event_type == "consent.granted"
        return {**consents, **dict.fromkeys(channels_named(channel), granted)}
    return dict(consents)
