"""A customer's row as JSON: what the workers' changelogs hold (shared/record_table.py), without
Faust, so that code outside a Faust worker (bench/quix_scoring.py) writes the same bytes."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic_core import to_jsonable_python


def encode_record(record: Any) -> bytes:
    return orjson.dumps(record, default=_jsonable, option=orjson.OPT_NON_STR_KEYS)


def _jsonable(value: Any) -> Any:
    """What orjson does not write itself: sets in a stable order, a value that says what its JSON
    is (`__jsonable__`, e.g. shared/ledger.py's Ledger) as it says, anything else as pydantic would."""
    if isinstance(value, set | frozenset):
        return sorted(value)
    as_json = getattr(value, "__jsonable__", None)
    if as_json is not None:
        return as_json()
    return to_jsonable_python(value)
