"""Who holds an ops token, and what they may do with it.

OPS_TOKENS lists tokens, comma-separated. An entry `holder:role:token` names the token's holder
and role; a bare `token` is an unnamed admin (what the setting held before roles existed).
Roles, each allowed what the one before it is:
- `viewer` reads every ops API;
- `operator` also changes campaigns and tag rules;
- `admin` also changes the scoring plan and replays dead letters.
Pure: shared/http.py checks requests against these.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum


class Role(IntEnum):
    viewer = 1
    operator = 2
    admin = 3


@dataclass(frozen=True)
class OpsIdentity:
    holder: str
    role: Role
    token: str


def ops_identities(entries: Iterable[str]) -> tuple[OpsIdentity, ...]:
    identities = []
    for number, entry in enumerate(entries, start=1):
        holder, role, token = [*entry.split(":", 2), "", ""][:3]
        if token and role in Role.__members__ and holder:
            identities.append(OpsIdentity(holder, Role[role], token))
        else:  # a bare token (which may itself contain colons)
            identities.append(OpsIdentity(f"ops-token-{number}", Role.admin, entry))
    return tuple(identities)
