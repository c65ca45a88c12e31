"""The lead concentration matrix kept as counts: each customer's cell, written with their score.

Counting the matrix at read time (lead_matrix.py, `scan`) lists every customer outside the
largest band and activity: ~200 ms at a million customers. So the worker keeps, beside `rank`
and `last_interaction`:
- `cell`   hash, customer -> `<plan fingerprint>:<band><activity>` (indices into BANDS and
           ACTIVITIES), their cell at the moment the worker last wrote them;
- `cells`  hash, `<plan fingerprint>:<band><activity>` -> how many customers `cell` holds there,
           and `as_of` -> the latest moment any cell was written at (epoch s).
One Lua script moves a customer between cells and does nothing when the cell is the one
already there, so a replayed batch changes no count; the counts are always exactly what `cell`
holds. The fingerprint names what of the plan a cell depends on: after a plan change, cells of
the old plan are not counted as the new plan's, and the worker rewrites its customers' cells
(agents.refresh_plan).

Time alone moves customers between cells (decay, activity windows). The moment it next does is
the customer's due time (intent.next_change_at, the `due` sorted set), when a tick makes the
worker write them again. The reader corrects the counts for the customers due by now and not
yet written again (lead_matrix.py), so the counts are the matrix at now, not at the last write.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import orjson
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from shared.redis import KEY_PREFIX

from .intent import Activity, Band
from .plan import ScoringPlan
from .ranking import band_key_range
from .views import active_since

PREFIX = f"{KEY_PREFIX}scoring:"
CELL = f"{PREFIX}cell"
CELLS = f"{PREFIX}cells"
AS_OF = "as_of"  # the field of `cells` holding the latest moment a cell was written at

BANDS = (Band.low, Band.medium, Band.high, Band.hot)
ACTIVITIES = (Activity.active_7d, Activity.active_30d, Activity.dormant)


def plan_fingerprint(plan: ScoringPlan) -> str:
    """What of the plan decides a customer's cell (bands, their scale, decay, activity windows)."""
    bands, windows = plan.bands, plan.activity
    # As floats: a default may be an int where the same plan read back from JSON has a float.
    parts = [
        plan.half_life_days,
        plan.pct_scale,
        bands.medium,
        bands.high,
        bands.hot,
        windows.active_7d_days,
        windows.active_30d_days,
    ]
    return hashlib.sha1(orjson.dumps([float(part) for part in parts])).hexdigest()[:10]


@dataclass(frozen=True, slots=True)
class MatrixBounds:
    """The cells' edges at one moment: the rank-key floors of medium, high and hot, and the
    earliest last interaction of active_7d, then of active_30d. Where a customer falls is decided
    by comparing with these, in Python and in Lua alike, so both agree to the bit (and with
    views.matrix, whose edges these are)."""

    fingerprint: str
    floors: tuple[float, float, float]
    windows: tuple[float, float]

    @classmethod
    def at(cls, plan: ScoringPlan, now: datetime) -> MatrixBounds:
        medium, high, hot = (band_key_range(b, plan, now)[0] for b in (Band.medium, Band.high, Band.hot))
        windows = plan.activity
        week, month = (active_since(days, now) for days in (windows.active_7d_days, windows.active_30d_days))
        # A plan may make the 30-day window the shorter one: then nobody is active_30d, and
        # dormant must start where active_7d ends.
        return cls(plan_fingerprint(plan), (medium, high, hot), (week, min(month, week)))

    def cell(self, rank_key: float, last_interaction_s: float) -> str:
        """The customer's cell, `<fingerprint>:<band><activity>` (never interacted: -inf)."""
        medium, high, hot = self.floors
        band = 3 if rank_key >= hot else 2 if rank_key >= high else 1 if rank_key >= medium else 0
        week, month = self.windows
        activity = 0 if last_interaction_s >= week else 1 if last_interaction_s >= month else 2
        return f"{self.fingerprint}:{band}{activity}"

    def arguments(self) -> list[str]:
        # repr: the shortest text that parses back to the same double, so Redis compares exactly
        # what Python compares.
        return [repr(bound) for bound in (*self.floors, *self.windows)]


# Lua, for the scripts that move customers between cells (here and read_model.py), with the
# `cell` and `cells` keys as `cell_key` and `counts_key`. A move decrements the old cell and
# increments the new one, and does nothing when the cell is the one already there; a cell that
# falls to zero is removed, so an old plan's cells vanish once rewritten.
MOVES_LUA = """
local function take(cell)
  if redis.call('HINCRBY', counts_key, cell, -1) <= 0 then redis.call('HDEL', counts_key, cell) end
end
local function move(customer, cell)
  local old = redis.call('HGET', cell_key, customer)
  if old ~= cell then
    if old then take(old) end
    redis.call('HSET', cell_key, customer, cell)
    redis.call('HINCRBY', counts_key, cell, 1)
  end
end
local function remove(customer)
  local old = redis.call('HGET', cell_key, customer)
  if old then
    redis.call('HDEL', cell_key, customer)
    take(old)
  end
end
local function written_at(at)
  if tonumber(at) > tonumber(redis.call('HGET', counts_key, 'as_of') or '-1') then
    redis.call('HSET', counts_key, 'as_of', at)
  end
end
"""

# KEYS: cell, cells. ARGV: the moment written at (epoch s); JSON [[customer, cell], ...] to set;
# JSON [customer, ...] to remove.
_MOVE = (
    "local cell_key, counts_key = KEYS[1], KEYS[2]\n"
    + MOVES_LUA
    + """
for _, pair in ipairs(cjson.decode(ARGV[2])) do move(pair[1], pair[2]) end
for _, customer in ipairs(cjson.decode(ARGV[3])) do remove(customer) end
written_at(ARGV[1])
return 0
"""
)


def queue_cells(
    pipe: Pipeline, cells: dict[str, str], removed: Iterable[str], written_at: datetime | None
) -> None:
    """Queue moving customers into their cells and removing others (erased, merged away)."""
    removed = list(removed)
    if not cells and not removed:
        return
    at = written_at.timestamp() if written_at is not None else -1.0
    pipe.eval(_MOVE, 2, CELL, CELLS, repr(at), orjson.dumps(list(cells.items())), orjson.dumps(removed))


async def cells_hold(redis: Redis, fingerprint: str, customers_key: str) -> bool:
    """Whether every customer of `customers_key` (the `rank` sorted set) has a cell under the plan
    with this fingerprint: if so, a worker starting under that plan has nothing to rewrite."""
    counts = await redis.hgetall(CELLS)
    prefix = f"{fingerprint}:".encode()
    held = sum(int(n) for field, n in counts.items() if field.startswith(prefix))
    return held == await redis.zcard(customers_key)
