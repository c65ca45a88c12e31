-- Puts customers written before the band, activity, unset and funnel-step sets existed into
-- them, from their snapshots. Atomic per call, so a worker's write of the same customer comes
-- wholly before or wholly after (its sweep then removes any value this adds that it replaced).
-- KEYS: none. ARGV[1]: the key prefix (pd:tagging:); ARGV[2..]: customer ids.
-- Returns how many customers were put in their sets.
local prefix = ARGV[1]
local known = {
  band = {low = true, medium = true, high = true, hot = true},
  activity = {active_7d = true, active_30d = true, dormant = true},
}
local done = 0
for i = 2, #ARGV do
  local raw = redis.call('GET', prefix .. 'profile:' .. ARGV[i])
  if raw then
    local snapshot = cjson.decode(raw)
    if snapshot.merged_into == nil or snapshot.merged_into == cjson.null then
      for dimension, values in pairs(known) do
        local value = snapshot[dimension]
        if type(value) == 'string' and values[value] then
          redis.call('SADD', prefix .. 'seg:' .. dimension .. ':' .. value, ARGV[i])
        else
          redis.call('SADD', prefix .. 'seg:unset:' .. dimension, ARGV[i])
        end
      end
      if type(snapshot.reached) == 'table' then
        for _, step in ipairs(snapshot.reached) do
          redis.call('SADD', prefix .. 'seg:reached:' .. step, ARGV[i])
        end
      end
      done = done + 1
    end
  end
end
return done
