"""Per-content reach, clicks and conversions (content_touches.py), kept in Redis.

Each is a HyperLogLog of customer ids or event ids (PFADD): counting the same input again — a
replay after a crash — changes nothing, it takes 12 KiB per content at most, no customer id can
be read back from it (an erasure has nothing to remove), and it is exact to about ±0.8%.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pydantic import BaseModel, Field
from redis.asyncio import Redis

from .content_touches import FIGURES, ContentTouch, Figure
from .read_model import PREFIX


class ContentFigures(BaseModel):
    reach: int = Field(description="customers who engaged with it (±0.8%)")
    clicks: int = Field(description="content.click events naming it (±0.8%)")
    conversions: int = Field(
        description="customers who visited a store or ordered after engaging with it (±0.8%)"
    )


async def write_touches(redis: Redis, touches: Iterable[ContentTouch]) -> None:
    """Add a batch's touches (one PFADD per content and figure, one round trip)."""
    members: dict[str, list[str]] = {}
    for touch in touches:
        members.setdefault(figure_key(touch.content_id, touch.figure), []).append(touch.member)
    if not members:
        return
    pipe = redis.pipeline(transaction=False)
    for key, added in members.items():
        pipe.pfadd(key, *added)
    await pipe.execute()


def figure_key(content_id: str, figure: Figure) -> str:
    return f"{PREFIX}content:{content_id}:{figure}"


async def figures_of(redis: Redis, content_ids: Sequence[str]) -> list[ContentFigures]:
    pipe = redis.pipeline(transaction=False)
    for content_id in content_ids:
        for figure in FIGURES:
            pipe.pfcount(figure_key(content_id, figure))
    counts = await pipe.execute()
    return [
        ContentFigures(reach=counts[i], clicks=counts[i + 1], conversions=counts[i + 2])
        for i in range(0, len(counts), len(FIGURES))
    ]
