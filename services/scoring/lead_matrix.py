"""The lead concentration matrix, counted inside Redis: no customer is fetched into Python.

`views.matrix` says what the matrix is; this is the same count over the read model's two sorted
sets (read_model.py), in one Lua script, so one round trip and one consistent moment:
- a band at `now` is a range of `rank` (ranking.band_key_range) and an activity a range of
  `last_interaction` (views.active_since, exact to the bit; -inf for customers who never
  interacted), so the size of each band and each activity is a ZCOUNT;
- the crossing: the members of every band but the largest and of every activity but the
  largest are listed (members only: with their scores, formatted for the reply, it takes three
  times as long), the smaller side into a Lua table, the other side looked up in it. The
  largest band and the largest activity are what the totals leave. So the work grows with the
  customers outside the largest band and outside the largest activity (in a private domain,
  most customers are low and dormant), not with all customers.

It relies on what write_records keeps true: `rank` and `last_interaction` hold the same
customers. Where a read model written before `last_interaction` held the customers who never
interacted lacks some (the two sizes differ), dormant cannot be listed: it is then always the
activity left to the totals, which stays exact.
"""

from __future__ import annotations

from datetime import datetime

from redis.asyncio import Redis

from .intent import Activity, Band
from .plan import ScoringPlan
from .ranking import band_key_range
from .read_model import LAST_INTERACTION, RANK
from .views import active_since

BANDS = (Band.low, Band.medium, Band.high, Band.hot)  # the script's order
ACTIVITIES = (Activity.active_7d, Activity.active_30d, Activity.dormant)

# KEYS: rank, last_interaction. ARGV: the rank-key floors of medium, high and hot at now; the
# earliest last interaction of active_7d, then of active_30d. Returns customers per band
# (low..hot) per activity (active_7d, active_30d, dormant).
_COUNT = """
local rank, last = KEYS[1], KEYS[2]
local bands = {
  {'-inf', '(' .. ARGV[1]}, {ARGV[1], '(' .. ARGV[2]}, {ARGV[2], '(' .. ARGV[3]}, {ARGV[3], '+inf'}
}
local activities = {{ARGV[4], '+inf'}, {ARGV[5], '(' .. ARGV[4]}, {'-inf', '(' .. ARGV[5]}}

local function sizes(key, ranges)
  local counts, largest = {}, 1
  for i, range in ipairs(ranges) do
    counts[i] = redis.call('ZCOUNT', key, range[1], range[2])
    if counts[i] > counts[largest] then largest = i end
  end
  return counts, largest
end
local band_sizes, band_left = sizes(rank, bands)
local activity_sizes, activity_left = sizes(last, activities)
if redis.call('ZCARD', rank) ~= redis.call('ZCARD', last) then activity_left = 3 end

local function listed(sizes_of, left)
  local n = 0
  for i, size in ipairs(sizes_of) do if i ~= left then n = n + size end end
  return n
end
-- cells[band][activity], the crossings of listed bands and listed activities counted below
local cells = {}
for b = 1, 4 do cells[b] = {0, 0, 0} end
local bands_first = listed(band_sizes, band_left) <= listed(activity_sizes, activity_left)
local table_key, table_ranges, table_left = rank, bands, band_left
local walk_key, walk_ranges, walk_left = last, activities, activity_left
if not bands_first then
  table_key, table_ranges, table_left = last, activities, activity_left
  walk_key, walk_ranges, walk_left = rank, bands, band_left
end
local class_of = {}
for i, range in ipairs(table_ranges) do
  if i ~= table_left then
    local members = redis.call('ZRANGE', table_key, range[1], range[2], 'BYSCORE')
    for m = 1, #members do class_of[members[m]] = i end
  end
end
for w, range in ipairs(walk_ranges) do
  if w ~= walk_left then
    local members = redis.call('ZRANGE', walk_key, range[1], range[2], 'BYSCORE')
    for m = 1, #members do
      local t = class_of[members[m]]
      if t then
        if bands_first then cells[t][w] = cells[t][w] + 1 else cells[w][t] = cells[w][t] + 1 end
      end
    end
  end
end

-- What the totals leave: the largest band in each listed activity, then the largest activity.
for a = 1, 3 do
  if a ~= activity_left then
    local rest = activity_sizes[a]
    for b = 1, 4 do if b ~= band_left then rest = rest - cells[b][a] end end
    cells[band_left][a] = rest
  end
end
for b = 1, 4 do
  local rest = band_sizes[b]
  for a = 1, 3 do if a ~= activity_left then rest = rest - cells[b][a] end end
  cells[b][activity_left] = rest
end
return cells
"""


async def lead_matrix(redis: Redis, plan: ScoringPlan, now: datetime) -> dict[Band, dict[Activity, int]]:
    """Customers per (band x activity) cell at `now`: `views.matrix` of every customer."""
    floors = [band_key_range(band, plan, now)[0] for band in (Band.medium, Band.high, Band.hot)]
    activity = plan.activity
    week, month = (active_since(days, now) for days in (activity.active_7d_days, activity.active_30d_days))
    # A plan may make the 30-day window the shorter one: then nobody is active_30d, and dormant
    # must start where active_7d ends.
    windows = [week, min(month, week)]
    # repr: the shortest text that parses back to the same double, so Redis compares exactly
    # what views.matrix compares.
    bounds = [repr(bound) for bound in (*floors, *windows)]
    rows = await redis.eval(_COUNT, 2, RANK, LAST_INTERACTION, *bounds)
    return {band: dict(zip(ACTIVITIES, row, strict=True)) for band, row in zip(BANDS, rows, strict=True)}
