-- Remember events the broker acknowledged (pd:seen:<event_id> -> customer_id, or '' once the
-- customer was erased, for ARGV[1] seconds) and count them per source in the minute's hash
-- ARGV[2] (kept ARGV[3] seconds).
-- ARGV[4..]: per source, `source, n` and then n pairs `event_id, customer_id`: grouped by
-- source so that counting adds no argument per event. One call instead of one SET each.
-- An event counts only if its seen-mark is new (SET ... GET answers the old value): a retry or
-- the same event in two racing groups counts once. Counting runs under pcall: an error there
-- must neither undo nor fail the marks, on which the request's 202 depends.
-- Returns {events marked, the counting error or ""}.
local seen_ttl, minute, minute_ttl = ARGV[1], ARGV[2], ARGV[3]
local marked, counted, failure = 0, 0, ''
local i = 4
while i <= #ARGV do
  local source, n = ARGV[i], tonumber(ARGV[i + 1])
  local fresh = 0
  for j = i + 2, i + 2 * n, 2 do
    local customer_id = ARGV[j + 1]
    if redis.call('HEXISTS', 'pd:erased', customer_id) == 1 then
      customer_id = ''  -- erased while the event was on its way: seen, naming nobody
    end
    if not redis.call('SET', 'pd:seen:' .. ARGV[j], customer_id, 'EX', seen_ttl, 'GET') then
      fresh = fresh + 1
    end
  end
  marked = marked + n
  if fresh > 0 then
    local reply = redis.pcall('HINCRBY', minute, source, fresh)
    if type(reply) == 'table' and reply.err then
      failure = reply.err
    else
      counted = counted + fresh
    end
  end
  i = i + 2 + 2 * n
end
if counted > 0 then
  local reply = redis.pcall('EXPIRE', minute, minute_ttl)
  if type(reply) == 'table' and reply.err then
    failure = reply.err
  end
end
return {marked, failure}
