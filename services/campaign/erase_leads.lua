-- Closes erased customers' leads at the dealer desk (erasure.py), as desk.close_leads closes them
-- after a follow-up, and forgets the consultant of every assignment of their actions. One atomic
-- step: the desk's own optimistic transactions (assign_leads, release_pool, moving an inactive
-- consultant's leads) watch the leads hash, so they see the desk wholly before or wholly after,
-- and a lead is never left in a consultant's set, the pool or the open set without its record.
-- The leads to close are read here, from each customer's lead set, as well as from ARGV: a lead
-- handed on from a consultant who left, under a new action id, is in the set alone.
-- KEYS[1] leads (hash action id -> lead record), [2] the pool, [3] open leads, [4] released
--   leads, [5] assignments (hash action id -> consultant), [6..] each customer's lead set.
-- ARGV[1] the prefix of a consultant's lead set (the consultant id follows it); ARGV[2..] the
--   customers' action ids (every action recorded for them, leads or not).
-- Returns how many leads were open or waiting in the pool.
local leads, pool, open, released, assignments = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local consultant_prefix = ARGV[1]
local seen, ids = {}, {}
local function take(id)
  if not seen[id] then
    seen[id] = true
    ids[#ids + 1] = id
  end
end
for i = 2, #ARGV do
  take(ARGV[i])
end
for k = 6, #KEYS do
  for _, id in ipairs(redis.call('SMEMBERS', KEYS[k])) do
    take(id)
  end
end
table.sort(ids)
local closed = 0
for _, id in ipairs(ids) do
  local raw = redis.call('HGET', leads, id)
  if raw then
    local lead = cjson.decode(raw)
    if type(lead.consultant_id) == 'string' then
      redis.call('SREM', consultant_prefix .. lead.consultant_id, id)
    end
    redis.call('HDEL', leads, id)
    closed = closed + 1
  end
  redis.call('ZREM', pool, id)
  redis.call('ZREM', open, id)
  redis.call('ZREM', released, id)
  redis.call('HDEL', assignments, id)
end
for k = 6, #KEYS do
  redis.call('DEL', KEYS[k])
end
return closed
