"""Touchpoint keys and what each may write: its sources, event types and identity types.

`INGEST_API_KEYS` maps each key to its scope, a JSON object:

    {"sources": ["ad"], "event_types": ["ad.*", "content.view"], "identity_types": ["device_id"],
     "sees_customers": false, "holder": "ad-platform"}

- `sources`: the `source` values the key may write (`"*"`: any but the reserved `campaign`, the
  platform's own events such as `points.granted`, which only a key naming it may write).
- `event_types`: exact types, `prefix.*` families, or `"*"` for every type but the privileged
  ones. Privileged types change what the platform may do with a person or what they own —
  consent (`consent.*`, WeCom friendship, which grants WeCom consent), orders and deliveries,
  referrals (points) — and are allowed only when named one by one.
- `identity_types`: identity types the key may send (`"*"`: any). An identity links everything
  sent with it to one customer, so a key that may send `phone` may merge customers by phone.
- `sees_customers`: whether answers tell the key the `customer_id` each event went to. A key
  that cannot see customers gets `null` there, so it cannot learn who is behind a phone.

The older form, a list of sources, still reads: `["*"]` is a fully trusted key (every type,
privileged ones included, every identity, sees customers: the local stack's key); a list of
named sources may write every non-privileged type and identity and does not see customers.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

# Sources the platform itself writes (campaign's points.granted, services/campaign/points.py):
# a touchpoint key writes them only when it names them.
RESERVED_SOURCES = frozenset({"campaign"})

PRIVILEGED_TYPES = frozenset(
    {
        "consent.granted",
        "consent.revoked",
        "wecom.friend_added",
        "wecom.friend_deleted",
        "order.placed",
        "vehicle.delivered",
        "referral.made",
        "points.granted",
        "points.redeemed",
    }
)


class KeyScope(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sources: list[str] = Field(min_length=1)
    event_types: list[str] = Field(default_factory=lambda: ["*"])
    identity_types: list[str] = Field(default_factory=lambda: ["*"])
    sees_customers: bool = False
    holder: str | None = Field(default=None, max_length=128)

    @classmethod
    def of(cls, entry: list[str] | KeyScope) -> KeyScope:
        if isinstance(entry, KeyScope):
            return entry
        if "*" in entry:  # the older form's fully trusted key
            return cls(sources=["*"], event_types=["*", *sorted(PRIVILEGED_TYPES)], sees_customers=True)
        return cls(sources=list(entry))


@dataclass(frozen=True)
class Scope:
    """A key's scope, ready for the checks made on every event."""

    sources: frozenset[str]
    exact_types: frozenset[str]
    families: tuple[str, ...]  # "content." for "content.*"
    any_type: bool
    identity_types: frozenset[str]
    sees_customers: bool

    @classmethod
    def of(cls, scope: KeyScope) -> Scope:
        return cls(
            sources=frozenset(scope.sources),
            exact_types=frozenset(t for t in scope.event_types if not t.endswith("*")),
            families=tuple(t[:-1] for t in scope.event_types if t.endswith(".*")),
            any_type="*" in scope.event_types,
            identity_types=frozenset(scope.identity_types),
            sees_customers=scope.sees_customers,
        )

    def may_write_source(self, source: str) -> bool:
        if source in RESERVED_SOURCES:  # only when named
            return source in self.sources
        return "*" in self.sources or source in self.sources

    def may_write_type(self, event_type: str) -> bool:
        if event_type in self.exact_types:
            return True
        if event_type in PRIVILEGED_TYPES:  # only when named
            return False
        return self.any_type or event_type.startswith(self.families)

    def forbidden_identities(self, identity_types: list[str]) -> list[str]:
        if "*" in self.identity_types:
            return []
        return [kind for kind in identity_types if kind not in self.identity_types]


class ApiKeys:
    def __init__(self, entries: dict[str, list[str] | KeyScope]) -> None:
        self._scopes = {key: Scope.of(KeyScope.of(entry)) for key, entry in entries.items()}

    def scope_for(self, key: str | None) -> Scope | None:
        """The scope of `key`, or None for a missing or unknown key."""
        if not key:
            return None
        given = key.encode()  # compare bytes: a non-ASCII header is just a wrong key, not a 500
        found = None
        for known, scope in self._scopes.items():
            if secrets.compare_digest(given, known.encode()):
                found = scope
        return found
