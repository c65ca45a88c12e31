"""Values many rows hold, held once.

A worker holds a row per customer (a million of them, docs/benchmarks.md), and many rows hold
equal values: empty mappings (per-model scores, topics, value points, evidence; an empty dict is
64 bytes each time), the same few tuples of tags or milestones, the same day. Rows take one
shared copy instead, as the domain builds them and as they are read back from a changelog
(pydantic validators for the fields: `SHARED_WHEN_EMPTY`, `ONE_COPY`).

`EMPTY` is a dict, so it encodes and compares as one, but changing it raises: the domain already
makes a new mapping whenever one changes, and this keeps it that way.
"""

from __future__ import annotations

import sys
from functools import lru_cache
from typing import Any, NoReturn, TypeVar

from pydantic import AfterValidator

T = TypeVar("T")


class _SharedEmpty(dict[Any, Any]):
    def _shared(self, *args: object, **kwargs: object) -> NoReturn:
        raise TypeError("EMPTY is shared by every row: make a new mapping instead")

    __setitem__ = __delitem__ = update = pop = popitem = clear = setdefault = __ior__ = _shared


EMPTY: dict[Any, Any] = _SharedEmpty()


@lru_cache(maxsize=4096)
def _first_seen(value: Any, kind: tuple[Any, ...]) -> Any:
    return value


def one_copy(value: T) -> T:
    """The first equal value of the same kind seen (of the last 4,096 different ones): for
    immutable, hashable values many rows hold, such as texts, tuples of texts or datetimes.
    Equal values can differ in what they write or how they behave, so the kind must match too:
    the type (1, 1.0 and True are equal), a tuple's first item's type (a text enum equals its
    text) and a datetime's time zone (two datetimes of one instant are equal whatever their
    offsets). The copy kept writes the same text as the value given."""
    first = value[0] if isinstance(value, tuple) and value else None
    return _first_seen(value, (type(value), type(first), getattr(value, "tzinfo", None)))


def one_text(text: str) -> str:
    """One copy of a text many rows hold (a band, a store's id): interned, cheaper than one_copy."""
    return sys.intern(text)


# For a row's fields: Annotated[dict[str, int], SHARED_WHEN_EMPTY], Annotated[tuple[str, ...], ONE_COPY],
# Annotated[str, ONE_TEXT].
SHARED_WHEN_EMPTY = AfterValidator(lambda mapping: mapping or EMPTY)
ONE_COPY = AfterValidator(one_copy)
ONE_TEXT = AfterValidator(one_text)
