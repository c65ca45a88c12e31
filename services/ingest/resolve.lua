-- Dedupe and identity resolution for one batch of events, atomically (Redis runs a script
-- alone, so two requests racing to link the same identifiers cannot create two customers).
--
-- ARGV[1]: {"now": iso8601, "events": [{"id": event_id, "idn": ["type:value", ...]}, ...]}
-- Returns: {"results": [[customer_id, duplicate(0|1)], ...], "merges": [merge_id, ...]}
--
-- Keys (all under pd:):
--   idn:<type>:<value>      -> customer_id owning that identifier
--   cust:<id>:idn           -> set of "<type>:<value>" the customer owns
--   cust:<id>:merged_into   -> survivor, once the customer was merged away
--   customer:seq            -> counter; customer ids are "cus_<n>", so a smaller n is older
--   seen:<event_id>         -> customer_id (written by ingest after the broker acknowledged)
--   outbox:merges           -> stream of merges not yet published to identity.merges.v1
local request = cjson.decode(ARGV[1])
local results, merges = {}, {}

local function age(customer_id)
  return tonumber(string.sub(customer_id, 5))
end

local function survivor_of(customer_id)
  local next_id = redis.call('GET', 'pd:cust:' .. customer_id .. ':merged_into')
  while next_id do
    customer_id = next_id
    next_id = redis.call('GET', 'pd:cust:' .. customer_id .. ':merged_into')
  end
  return customer_id
end

-- Move every identifier of `from` to `into`, and leave a record for the outbox publisher.
local function merge(from, into)
  local members = redis.call('SMEMBERS', 'pd:cust:' .. from .. ':idn')
  for _, member in ipairs(members) do
    redis.call('SET', 'pd:idn:' .. member, into)
    redis.call('SADD', 'pd:cust:' .. into .. ':idn', member)
  end
  redis.call('DEL', 'pd:cust:' .. from .. ':idn')
  redis.call('SET', 'pd:cust:' .. from .. ':merged_into', into)
  local merge_id = from .. '>' .. into
  redis.call('XADD', 'pd:outbox:merges', '*', 'merge_id', merge_id, 'merged', from,
    'survivor', into, 'at', request.now, 'identities', cjson.encode(members))
  table.insert(merges, merge_id)
end

for i, event in ipairs(request.events) do
  local seen = redis.call('GET', 'pd:seen:' .. event.id)
  if seen then
    results[i] = {survivor_of(seen), 1}
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
    for _, owner in ipairs(owners) do
      if owner ~= customer_id then merge(owner, customer_id) end
    end
    for j, identity in ipairs(event.idn) do
      if owner_of[j] ~= customer_id then
        redis.call('SET', 'pd:idn:' .. identity, customer_id)
        redis.call('SADD', 'pd:cust:' .. customer_id .. ':idn', identity)
      end
    end
    results[i] = {customer_id, 0}
  end
end

return cjson.encode({results = results, merges = merges})
