"""What ingest's WeCom callback and the WeCom sender share: where a customer's WeCom contacts
and their consultants are kept (docs/wecom.md).

- `pd:cust:{customer}:idn` (ingest's identity graph, resolve.lua): the customer's identifiers,
  `wecom_external_userid:<id>` among them; it follows merges.
- `pd:wecom:consultant:{external_userid}`: the WeCom user (consultant) the contact was added by,
  set by `wecom.friend_added` callbacks, removed when either side deletes the other.
"""

from __future__ import annotations

from shared.redis import KEY_PREFIX

EXTERNAL_USERID = "wecom_external_userid"


def customer_identities_key(customer_id: str) -> str:
    return f"{KEY_PREFIX}cust:{customer_id}:idn"


def consultant_key(external_userid: str) -> str:
    return f"{KEY_PREFIX}wecom:consultant:{external_userid}"
