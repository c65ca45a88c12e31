-- Erases customers from the tagging read model (erasure.py), and with them every customer merged
-- away into them, to any depth. Atomic per call: a count, the ladder or a segment's stored
-- result never sees a customer in some of their sets and not others, and a worker's write of
-- another customer comes wholly before or wholly after.
-- KEYS: none (the customers' keys are named from their ids, as backfill_segments.lua does).
-- ARGV[1]: the key prefix (pd:tagging:); ARGV[2]: n; ARGV[3..n+2]: the sets every customer may be
-- in whatever their profile says (seg:all and every value's set of the fixed dimensions);
-- ARGV[n+3..]: the customer ids.
-- Returns how many profiles (merged-away snapshots included) it deleted.
local prefix = ARGV[1]
local fixed = tonumber(ARGV[2])
local all_tags = prefix .. 'tags'

local erasing, order = {}, {}
for i = fixed + 3, #ARGV do
  if not erasing[ARGV[i]] then
    erasing[ARGV[i]] = true
    order[#order + 1] = ARGV[i]
  end
end
-- Customers merged away into an erased one: their snapshots name it, and they are the same person.
local at = 1
while at <= #order do
  for _, merged in ipairs(redis.call('SMEMBERS', prefix .. 'merged_away:' .. order[at])) do
    if not erasing[merged] then
      erasing[merged] = true
      order[#order + 1] = merged
    end
  end
  at = at + 1
end

local tags, deleted = {}, 0
for _, id in ipairs(order) do
  local profile = prefix .. 'profile:' .. id
  local raw = redis.call('GET', profile)
  if raw then
    local ok, snapshot = pcall(cjson.decode, raw)
    if ok and type(snapshot) == 'table' then
      -- Tags are the only open-ended sets: the snapshot names the ones the customer is in.
      if type(snapshot.tags) == 'table' then
        for _, tag in ipairs(snapshot.tags) do
          if type(tag) == 'string' then
            redis.call('SREM', prefix .. 'seg:tag:' .. tag, id)
            tags[tag] = true
          end
        end
      end
      local survivor = snapshot.merged_into
      if type(survivor) == 'string' and not erasing[survivor] then
        redis.call('SREM', prefix .. 'merged_away:' .. survivor, id)
      end
    end
    redis.call('DEL', profile)
    deleted = deleted + 1
  end
  for i = 3, fixed + 2 do
    redis.call('SREM', ARGV[i], id)
  end
  redis.call('DEL', prefix .. 'merged_away:' .. id)
end
-- A tag only erased customers had leaves the tag names (it may be theirs alone: a reason, a topic).
for tag in pairs(tags) do
  if redis.call('EXISTS', prefix .. 'seg:tag:' .. tag) == 0 then
    redis.call('SREM', all_tags, tag)
  end
end
return deleted
