-- Dedupe and identity resolution for one batch of events, atomically (Redis runs a script
-- alone, so two requests racing to link the same identifiers cannot create two customers).
--
-- ARGV[1]: {"now": iso8601, "events": [{"id": event_id, "idn": ["type:value", ...]}, ...]}
-- ARGV[2]: now in epoch milliseconds (when new pending joins start to wait)
-- ARGV[3]: limits {"identifiers": {type: most of that type one customer holds}, "default": n,
--          "merges_per_day": most customers merged into one customer a UTC day, "conflicts": cap}
-- Returns: {"results": [[customer_id, duplicate(0|1)] or [customer_id, 0, joins, conflict], ...]}
-- where `conflict` (maybe absent) says why the event was accepted without linking all it named:
-- "merge_limit" (merging its owners would pass the day's merges or a type's limit) or
-- "identifier_limit" (a new identifier of a type the customer holds its most of).
-- where `joins` are the pending joins whose records go on the topic right before that event:
-- [{"merge_id", "merged", "survivor", "identities": ["type:value", ...], "at", "seq"}, ...],
-- oldest first. Only the first new event of the batch resolving to a customer carries them
-- (an event's ack then depends on theirs: pipeline.py).
--
-- Keys (all under pd:):
--   idn:<type>:<value>      -> customer_id owning that identifier
--   cust:<id>:idn           -> set of "<type>:<value>" the customer owns
--   cust:<id>:merged_into   -> survivor, once the customer was merged away
--   cust:<id>:merged_from   -> set of every customer merged into <id>, directly or not
--   erased                  -> hash customer_id -> erasure record (erase.lua); never resolved to
--   customer:seq            -> counter; customer ids are "cus_<n>", so a smaller n is older
--   seen:<event_id>         -> customer_id (written by ingest after the broker acknowledged), or
--                              '' once that customer was erased: a duplicate naming nobody
--   outbox:merges           -> stream of merges not yet published to identity.merges.v1
--   joining:<id>            -> hash merge_id -> merge (JSON): merges whose records are not yet
--                              acknowledged on touchpoint.events.v1; <id>'s next event carries them
--   joining                 -> sorted set "<id>|<merge_id>" by when it started waiting (ms)
--   joining:seq             -> counter ordering merges, so chained ones keep their order
--   cust:<id>:merges:<day>  -> customers merged into <id> that UTC day (expires after two days)
--   identity:conflicts      -> stream of events accepted without (all) their links, for review
local request = cjson.decode(ARGV[1])
local now_ms = ARGV[2]
local limits = cjson.decode(ARGV[3])
local day = string.sub(request.now, 1, 10)
local results = {}
-- Most batches meet no pending join: then no customer's hash needs reading.
local any_pending = redis.call('EXISTS', 'pd:joining') == 1
local pending = {}  -- customer -> its pending joins, oldest first (read once per call)
local carried = {}  -- merge_id -> true once an event of this batch carries it

local function age(customer_id)
  return tonumber(string.sub(customer_id, 5))
end

local function limit_of(kind)
  return limits.identifiers[kind] or limits.default
end

local function kind_of(identity)
  return string.match(identity, '^([^:]+):')
end

-- How many identifiers of each type `customer_id` holds (a customer holds a few dozen at most).
local function counts_of(customer_id, into)
  into = into or {}
  for _, member in ipairs(redis.call('SMEMBERS', 'pd:cust:' .. customer_id .. ':idn')) do
    local kind = kind_of(member)
    into[kind] = (into[kind] or 0) + 1
  end
  return into
end

local function conflict(event_id, customer_id, others, identities, reason)
  redis.call('XADD', 'pd:identity:conflicts', 'MAXLEN', '~', limits.conflicts, '*', 'at', request.now,
    'event_id', event_id, 'customer_id', customer_id, 'others', cjson.encode(others),
    'identities', cjson.encode(identities), 'reason', reason)
  return reason
end

local function by_seq(a, b)
  return a.seq < b.seq
end

local function survivor_of(customer_id)
  local next_id = redis.call('GET', 'pd:cust:' .. customer_id .. ':merged_into')
  while next_id do
    customer_id = next_id
    next_id = redis.call('GET', 'pd:cust:' .. customer_id .. ':merged_into')
  end
  return customer_id
end

local function pending_of(customer_id)
  local joins = pending[customer_id]
  if not joins then
    joins = {}
    if any_pending then
      for _, value in ipairs(redis.call('HVALS', 'pd:joining:' .. customer_id)) do
        table.insert(joins, cjson.decode(value))
      end
      table.sort(joins, by_seq)
    end
    pending[customer_id] = joins
  end
  return joins
end

local function add_pending(customer_id, join, score)
  redis.call('HSET', 'pd:joining:' .. customer_id, join.merge_id, cjson.encode(join))
  redis.call('ZADD', 'pd:joining', score, customer_id .. '|' .. join.merge_id)
end

-- Move every identifier of `from` to `into`, leave a record for the outbox publisher, and
-- leave the merge pending until its records are acknowledged on touchpoint.events.v1.
local function merge(from, into)
  local joins = pending_of(into)  -- read before this merge adds to it
  local members = redis.call('SMEMBERS', 'pd:cust:' .. from .. ':idn')
  for _, member in ipairs(members) do
    redis.call('SET', 'pd:idn:' .. member, into)
    redis.call('SADD', 'pd:cust:' .. into .. ':idn', member)
  end
  redis.call('DEL', 'pd:cust:' .. from .. ':idn')
  redis.call('SET', 'pd:cust:' .. from .. ':merged_into', into)
  -- Who was merged into `into`, directly or not: an erasure erases them with it (erase.lua).
  redis.call('SADD', 'pd:cust:' .. into .. ':merged_from', from)
  for _, merged in ipairs(redis.call('SMEMBERS', 'pd:cust:' .. from .. ':merged_from')) do
    redis.call('SADD', 'pd:cust:' .. into .. ':merged_from', merged)
  end
  redis.call('DEL', 'pd:cust:' .. from .. ':merged_from')
  local merge_id = from .. '>' .. into
  redis.call('XADD', 'pd:outbox:merges', '*', 'merge_id', merge_id, 'merged', from,
    'survivor', into, 'at', request.now, 'identities', cjson.encode(members))

  -- Joins still pending for `from` would never be carried now (no event resolves to it any
  -- more): `into`'s next event carries them, before this merge, as they happened before it;
  -- again if an event of `from` carries them already, as that event's produce may fail.
  for _, join in ipairs(pending_of(from)) do
    local member = from .. '|' .. join.merge_id
    local since = redis.call('ZSCORE', 'pd:joining', member) or now_ms
    redis.call('ZREM', 'pd:joining', member)
    add_pending(into, join, since)
    table.insert(joins, join)
    carried[join.merge_id] = nil
  end
  redis.call('DEL', 'pd:joining:' .. from)
  pending[from] = {}

  local join = {merge_id = merge_id, merged = from, survivor = into, identities = members,
    at = request.now, seq = redis.call('INCR', 'pd:joining:seq')}
  add_pending(into, join, now_ms)
  table.insert(joins, join)
  table.sort(joins, by_seq)
  any_pending = true
end

for i, event in ipairs(request.events) do
  local seen = redis.call('GET', 'pd:seen:' .. event.id)
  if seen then
    results[i] = {seen ~= '' and survivor_of(seen) or '', 1}
  else
    -- Owners in order of appearance, so the outcome does not depend on table iteration.
    local owner_of, owners, is_owner, oldest = {}, {}, {}, nil
    for j, identity in ipairs(event.idn) do
      local owner = redis.call('GET', 'pd:idn:' .. identity)
      owner_of[j] = owner
      if owner and not is_owner[owner] then
        is_owner[owner] = true
        table.insert(owners, owner)
        if not oldest or age(owner) < age(oldest) then oldest = owner end
      end
    end

    local customer_id = oldest
    if not customer_id then
      customer_id = 'cus_' .. redis.call('INCR', 'pd:customer:seq')
    end
    local others, conflicted = {}, nil
    for _, owner in ipairs(owners) do
      if owner ~= customer_id then table.insert(others, owner) end
    end
    local counts = nil
    if #others > 0 then
      -- One shared device or a mistyped phone must not chain-merge strangers: past the day's
      -- merges, or past a type's limit once merged, the event goes to the oldest owner alone.
      local merges_key = 'pd:cust:' .. customer_id .. ':merges:' .. day
      local merged_today = tonumber(redis.call('GET', merges_key) or '0')
      counts = counts_of(customer_id)
      for _, owner in ipairs(others) do counts_of(owner, counts) end
      local too_many = merged_today + #others > limits.merges_per_day
      for kind, n in pairs(counts) do
        if n > limit_of(kind) then too_many = true end
      end
      if too_many then
        conflicted = conflict(event.id, customer_id, others, event.idn, 'merge_limit')
        counts = nil
      else
        for _, owner in ipairs(others) do merge(owner, customer_id) end
        redis.call('INCRBY', merges_key, #others)
        redis.call('EXPIRE', merges_key, 2 * 86400)
        for j, owner in ipairs(owner_of) do
          if owner then owner_of[j] = customer_id end  -- moved by the merge
        end
      end
    end
    for j, identity in ipairs(event.idn) do
      if not owner_of[j] then
        counts = counts or counts_of(customer_id)
        local kind = kind_of(identity)
        if (counts[kind] or 0) < limit_of(kind) then
          counts[kind] = (counts[kind] or 0) + 1
          redis.call('SET', 'pd:idn:' .. identity, customer_id)
          redis.call('SADD', 'pd:cust:' .. customer_id .. ':idn', identity)
        elseif not conflicted then
          conflicted = conflict(event.id, customer_id, {}, event.idn, 'identifier_limit')
        end
      end
    end

    local joins = {}
    for _, join in ipairs(pending_of(customer_id)) do
      if not carried[join.merge_id] then
        carried[join.merge_id] = true
        table.insert(joins, join)
      end
    end
    if conflicted then
      results[i] = {customer_id, 0, joins, conflicted}
    elseif #joins > 0 then
      results[i] = {customer_id, 0, joins}
    else
      results[i] = {customer_id, 0}
    end
  end
end

return cjson.encode({results = results})
