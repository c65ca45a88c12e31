"""The cursor of a segment's pages of members: where the next page starts. Pure.

Opaque to clients (base64 of its fields), and tied to the query it pages by the query's digest.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass


@dataclass(frozen=True)
class PageCursor:
    """Where the next page of a segment starts.

    The pages come from a stored result (`window`, which names it) or from a live set
    (`live_group`: the plan's group whose set is read, -1 for everyone's; segments.py). `scan`
    is the SSCAN cursor of the next page's first call. SSCAN's COUNT is only a hint, so a page
    may end inside one call's answer: the next page makes the same call again (same `count`)
    and skips the `skip` members already read, since on a set that holds still (a stored
    result) the same call answers the same members in the same order. Pages of a live set end
    between calls instead, unless one call answers more than a whole page. `total` is the
    segment's size when paging began, which pages of a live set answer with (pages of a stored
    result answer with its size, the same number).
    """

    query: str
    window: int | None
    live_group: int | None
    scan: int
    skip: int = 0
    count: int = 0
    total: int = 0

    def __post_init__(self) -> None:
        if (self.window is None) == (self.live_group is None):
            raise ValueError("a cursor pages either a stored result or a live set")

    def encode(self) -> str:
        source = f"w{self.window}" if self.window is not None else f"l{self.live_group}"
        raw = f"{self.query}.{source}.{self.scan}.{self.skip}.{self.count}.{self.total}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> PageCursor | None:
        """None for the first page (no cursor, or "0"); ValueError for anything not ours."""
        if text in ("", "0"):
            return None
        invalid = ValueError("not a cursor this API gave out")
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
            query, source, *numbers = raw.split(".")
            scan, skip, count, total = (int(n) for n in numbers)
            kind, value = source[:1], int(source[1:])
            if kind not in ("w", "l"):
                raise invalid
            window, live = (value, None) if kind == "w" else (None, value)
            cursor = cls(query, window, live, scan, skip, count, total)
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise invalid from None
        if min(scan, skip, count, total, window or 0) < 0 or (live or 0) < -1 or not query.isalnum():
            raise invalid
        return cursor
