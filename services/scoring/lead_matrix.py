"""The lead concentration matrix, counted inside Redis: no customer is fetched into Python.

`views.matrix` says what the matrix is. Usually the counts the worker keeps answer
(matrix_cells.py), corrected for the customers time alone has moved since they were written
(those due by now): the work grows with those, not with the customers. Where the counts cannot
answer (just after a plan change, before the worker rewrote the cells; a read model from before
them; a moment earlier than the cells were written), `scan` counts the read model's two sorted
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
from .matrix_cells import ACTIVITIES, BANDS, MatrixBounds
from .plan import ScoringPlan
from .read_model import CELL, CELLS, DUE, LAST_INTERACTION, RANK

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


# KEYS: cells, cell, due, rank, last_interaction. ARGV: the plan's fingerprint; now (epoch s);
# how far past now a due time still counts as due; how much later than now the cells may have
# been written; then MatrixBounds.arguments(). Returns the 12 counts (band-major), or false when
# the counts cannot answer: a customer's cell is of another plan or missing (a plan change not
# yet rewritten, a read model from before the counts), or the cells were written later than now.
_COUNTED = """
local counts_key, cell_key, due_key, rank_key, last_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local prefix, now = ARGV[1] .. ':', tonumber(ARGV[2])
local due_margin, skew = tonumber(ARGV[3]), tonumber(ARGV[4])
local function number(text)
  if text == 'inf' or text == '+inf' then return math.huge end
  if text == '-inf' then return -math.huge end
  return tonumber(text)
end
local medium, high, hot = number(ARGV[5]), number(ARGV[6]), number(ARGV[7])
local week, month = number(ARGV[8]), number(ARGV[9])

local stored = redis.call('HGETALL', counts_key)
local counts, total, as_of = {}, 0, nil
for i = 1, #stored, 2 do
  local field = stored[i]
  if field == 'as_of' then
    as_of = tonumber(stored[i + 1])
  elseif string.sub(field, 1, #prefix) == prefix then
    counts[string.sub(field, #prefix + 1)] = tonumber(stored[i + 1])
    total = total + tonumber(stored[i + 1])
  end
end
if as_of == nil or as_of > now + skew or total ~= redis.call('ZCARD', rank_key) then return false end

-- Customers whom time alone may have moved since they were written: their cell at now.
local function cell_now(customer)
  local key = redis.call('ZSCORE', rank_key, customer)
  if not key then return nil end
  key = number(key)
  local band = 0
  if key >= hot then band = 3 elseif key >= high then band = 2 elseif key >= medium then band = 1 end
  local last = redis.call('ZSCORE', last_key, customer)
  local activity = 2
  if last then
    last = number(last)
    if last >= week then activity = 0 elseif last >= month then activity = 1 end
  end
  return band .. activity
end
local due = redis.call('ZRANGEBYSCORE', due_key, '-inf', now + due_margin)
for _, customer in ipairs(due) do
  local written = redis.call('HGET', cell_key, customer)
  if written and string.sub(written, 1, #prefix) == prefix then
    local was, is = string.sub(written, #prefix + 1), cell_now(customer)
    if is and is ~= was then
      counts[was] = (counts[was] or 0) - 1
      counts[is] = (counts[is] or 0) + 1
    end
  end
end
local cells = {}
for band = 0, 3 do
  for activity = 0, 2 do cells[#cells + 1] = counts[band .. activity] or 0 end
end
return cells
"""

# Due times fall a second past the change (intent.next_change_at): a customer due within this
# much after now may have moved already, and is looked at.
DUE_MARGIN_S = 2.0
# Cells written up to this much later than the reader's now still answer (workers' and APIs'
# clocks, a batch stamped after the read began); further, the matrix is counted by `scan`.
CLOCK_SKEW_S = 5.0


async def lead_matrix(
    redis: Redis, plan: ScoringPlan, now: datetime
) -> tuple[dict[Band, dict[Activity, int]], bool]:
    """Customers per (band x activity) cell at `now`: `views.matrix` of every customer. From
    the counts the worker keeps where they can answer (True), else counted by `scan` (False)."""
    bounds = MatrixBounds.at(plan, now)
    keys = (CELLS, CELL, DUE, RANK, LAST_INTERACTION)
    arguments = [bounds.fingerprint, repr(now.timestamp()), DUE_MARGIN_S, CLOCK_SKEW_S, *bounds.arguments()]
    counted = await redis.eval(_COUNTED, len(keys), *keys, *arguments)
    if counted:
        rows = [counted[i : i + len(ACTIVITIES)] for i in range(0, len(counted), len(ACTIVITIES))]
        return _cells(rows), True
    return await scan(redis, bounds), False


async def scan(redis: Redis, bounds: MatrixBounds) -> dict[Band, dict[Activity, int]]:
    """The matrix counted from `rank` and `last_interaction` alone, every call."""
    rows = await redis.eval(_COUNT, 2, RANK, LAST_INTERACTION, *bounds.arguments())
    return _cells(rows)


def _cells(rows: list[list[int]]) -> dict[Band, dict[Activity, int]]:
    return {band: dict(zip(ACTIVITIES, row, strict=True)) for band, row in zip(BANDS, rows, strict=True)}
