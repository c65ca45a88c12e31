-- Replaces erased customers' members (their customer ids, their action ids) in the figures kept
-- as sets and counted by their size (erasure.py): a campaign's `stats:{campaign}:{figure}`, a
-- day's `daily:{date}:{campaign}:{figure}`. Each member goes and an anonymous stand-in takes its
-- place, so every figure keeps its count (a number is not personal data) and no member names
-- anyone. A stand-in is `erased:` and the SHA-1 of a salt drawn for the erasure and never kept,
-- the figure's key and the member: nothing links it to the customer, nor to the customer's other
-- stand-ins. Atomic, and the stand-in goes in before the member leaves: a reader never counts one
-- less, and a set never empties (a day's figures keep their expiry).
-- Each group of figures has an index set of their names, so that nothing scans.
-- KEYS: index sets of figure names (`stats:{campaign}:figures`, `daily:{date}`).
-- ARGV: for each index, in order, the prefix of its figures' keys (a figure's key is the prefix
--   and its name); then how many name prefixes follow, and those (a figure is looked at when its
--   name starts with one of them; "" for every figure); then the salt; then the members.
-- Returns how many members were replaced.
local n = #KEYS
local m = tonumber(ARGV[n + 1])
local prefixes = {}
for i = 1, m do
  prefixes[i] = ARGV[n + 1 + i]
end
local salt = ARGV[n + m + 2]
local members = {}
for i = n + m + 3, #ARGV do
  members[#members + 1] = ARGV[i]
end
if #members == 0 then
  return 0
end
local function wanted(name)
  for _, prefix in ipairs(prefixes) do
    if string.sub(name, 1, #prefix) == prefix then
      return true
    end
  end
  return false
end
local SLICE = 1000 -- unpack takes a bounded number of arguments
local replaced = 0
for k = 1, n do
  local key_prefix = ARGV[k]
  for _, name in ipairs(redis.call('SMEMBERS', KEYS[k])) do
    if wanted(name) then
      local figure = key_prefix .. name
      for first = 1, #members, SLICE do
        local last = math.min(first + SLICE - 1, #members)
        local found = redis.call('SMISMEMBER', figure, unpack(members, first, last))
        for i, present in ipairs(found) do
          if present == 1 then
            local member = members[first + i - 1]
            redis.call('SADD', figure, 'erased:' .. redis.sha1hex(salt .. '\0' .. figure .. '\0' .. member))
            redis.call('SREM', figure, member)
            replaced = replaced + 1
          end
        end
      end
    end
  end
end
return replaced
