"""Each campaign's actions per China day: sent, deferred, suppressed by reason.

Keys (under `pd:campaign:daily:`), written by the worker with each batch's other figures:
- `{date}:{campaign}:{figure}` sets of action ids, `figure` one of `sent`, `deferred`,
  `suppressed:{reason}`; the date is the China date of the action's `at` (when it was decided,
  or released after quiet hours);
- `{date}` the set of that day's `{campaign}:{figure}` names, so a read never scans.
Sets of action ids make a replayed batch add nothing. A deferred message counts as `deferred` on
the day it was decided and as `sent` (or `suppressed`) on the day it was released. Every key of a
day expires together, RETENTION after the day ended.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from shared.redis import KEY_PREFIX, indexed_set_sizes

from .targeting import CHINA

if TYPE_CHECKING:  # read_model writes these figures with its own: no import cycle at run time
    from .read_model import ActionRecord

RETENTION = dt.timedelta(days=35)
DAILY = f"{KEY_PREFIX}campaign:daily:"


class CampaignDay(BaseModel):
    sent: int = Field(description="actions sent that day (messages deferred earlier count on release)")
    deferred: int = Field(description="messages held for quiet hours that day")
    suppressed: int = Field(description="decisions not acted on that day, every reason")
    suppressed_by_reason: dict[str, int]


class DailyActions(BaseModel):
    date: dt.date = Field(description="a day in China time (UTC+8)")
    campaigns: dict[str, CampaignDay] = Field(description="campaigns that decided anything that day")


def china_date(at: dt.datetime) -> dt.date:
    return at.astimezone(CHINA).date()


def day_key(day: dt.date, name: str | None = None) -> str:
    return f"{DAILY}{day.isoformat()}" + (f":{name}" if name else "")


def figure_of(record: ActionRecord) -> str:
    if record.outcome == "suppressed":
        return f"suppressed:{record.reason}"
    return "deferred" if record.outcome == "deferred" else "sent"


def expires_at(day: dt.date) -> int:
    """Epoch seconds RETENTION after the China day ended: the same for every write of the day,
    so repeating a write changes nothing."""
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), CHINA)
    return int((end + RETENTION).timestamp())


def queue_actions(pipe: Pipeline, records: Iterable[ActionRecord]) -> None:
    """Queue each record's action id in its day's figure, and the figure in the day's index."""
    days: dict[dt.date, dict[str, list[str]]] = {}
    for record in records:
        name = f"{record.campaign_id}:{figure_of(record)}"
        days.setdefault(china_date(record.at), {}).setdefault(name, []).append(record.action_id)
    for day, figures in days.items():
        until = expires_at(day)
        for name, action_ids in figures.items():
            pipe.sadd(day_key(day, name), *action_ids)
            pipe.expireat(day_key(day, name), until)
        pipe.sadd(day_key(day), *figures)
        pipe.expireat(day_key(day), until)


def daily_actions_of(day: dt.date, figures: dict[str, int]) -> DailyActions:
    """The day's figures (`{campaign}:{figure}` -> count) by campaign."""
    by_campaign: dict[str, dict[str, int]] = {}
    for name, count in figures.items():
        campaign_id, figure = name.split(":", 1)  # campaign ids hold no ':' (definitions.ID_PATTERN)
        by_campaign.setdefault(campaign_id, {})[figure] = count
    campaigns = {}
    for campaign_id, counts in sorted(by_campaign.items()):
        reasons = {
            figure.removeprefix("suppressed:"): n
            for figure, n in sorted(counts.items())
            if figure.startswith("suppressed:")
        }
        campaigns[campaign_id] = CampaignDay(
            sent=counts.get("sent", 0),
            deferred=counts.get("deferred", 0),
            suppressed=sum(reasons.values()),
            suppressed_by_reason=reasons,
        )
    return DailyActions(date=day, campaigns=campaigns)


async def read_daily_actions(redis: Redis, day: dt.date) -> DailyActions:
    return daily_actions_of(
        day, await indexed_set_sizes(redis, day_key(day), lambda name: day_key(day, name))
    )
