"""Per-content reach, clicks and conversions (content_touches.py), kept in Redis as counts of
distinct customers or events (shared/distinct_counts.py)."""

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


def touch_members(touches: Iterable[ContentTouch]) -> list[tuple[str, str]]:
    """The (key, member) pairs a batch's touches add (shared/distinct_counts.py)."""
    return [(figure_key(t.content_id, t.figure), t.member) for t in touches]


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
