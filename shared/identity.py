"""The records of a merge: `identity.merged` and `identity.joined`.

When one event links identifiers owned by two customers, the older customer survives and the
newer is merged into it. Downstream workers fold the merged customer's state into the
survivor's. Ingest puts two records on `touchpoint.events.v1`, in the same produce batch as the
event that caused the merge and before it (docs/causal-order.md, "Merges"):

- `identity.merged`, keyed by `merged_customer_id`: after every event of the merged customer, so
  the worker owning their state hands it over at the right place;
- `identity.joined`, keyed by the survivor: the place among the survivor's inputs where the
  merged customer's state comes in. Workers wait there until the handover has arrived.

`identity.merged` also goes on `identity.merges.v1`, the public change feed of merges. Dedupe
by `merge_id` (at-least-once).
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


class IdentityJoined(BaseModel):
    """Where the merged customer's state joins the survivor's, among the survivor's inputs."""

    model_config = ConfigDict(frozen=True)

    type: Literal["identity.joined"] = "identity.joined"
    merge_id: str
    customer_id: str  # the survivor
    merged_customer_id: str
    joined_at: AwareDatetime
    schema_version: Literal[1] = 1


def group_identities(members: list[str]) -> dict[str, list[str]]:
    """["type:value", ...] -> {type: [value, ...]}, values sorted for stable output."""
    grouped: dict[str, list[str]] = {}
    for member in members:
        kind, _, value = member.partition(":")
        grouped.setdefault(kind, []).append(value)
    return {kind: sorted(values) for kind, values in sorted(grouped.items())}
