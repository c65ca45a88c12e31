"""The `identity.merged` record on `identity.merges.v1`.

When one event links identifiers owned by two customers, the older customer survives and the
newer is merged into it. Downstream workers fold the merged customer's state into the
survivor's. The record is keyed by `merged_customer_id`: the partition that owns the merged
customer's state is the one that must hand it over. Dedupe by `merge_id` (at-least-once).
"""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict


class IdentityMerged(BaseModel):
    model_config = ConfigDict(frozen=True)

    type: Literal["identity.merged"] = "identity.merged"
    merge_id: str
    merged_customer_id: str
    survivor_customer_id: str
    # The identifiers that moved, by type (phones as salted hashes).
    identities: dict[str, list[str]]
    merged_at: AwareDatetime
    schema_version: Literal[1] = 1


def group_identities(members: list[str]) -> dict[str, list[str]]:
    """["type:value", ...] -> {type: [value, ...]}, values sorted for stable output."""
    grouped: dict[str, list[str]] = {}
    for member in members:
        kind, _, value = member.partition(":")
        grouped.setdefault(kind, []).append(value)
    return {kind: sorted(values) for kind, values in sorted(grouped.items())}
