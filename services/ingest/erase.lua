-- Erase a customer (PIPL's right to deletion): the identity graph forgets them and the customers
-- merged into them (one person), and only an erasure record stays. Atomic, like resolve.lua,
-- whose keys it uses. What names them elsewhere (seen marks, streams) and the tombstones for the
-- workers follow in erasure.py, once this has answered; `pd:erased:pending` holds the erasure
-- until they are done.
-- ARGV[1]: {"customer_id", "at", "by", "days": [UTC days whose merge counters may exist]}
-- Returns the erasure record (shared/erasure.py, ErasureRecord) or {"error", "status": 404}.
local request = cjson.decode(ARGV[1])
local named = request.customer_id

local existing = redis.call('HGET', 'pd:erased', named)
if existing then
  local record = cjson.decode(existing)
  if record.erased_with then  -- erased with the customer it was merged into
    existing = redis.call('HGET', 'pd:erased', record.erased_with)
  end
  return existing
end

local survivor = named
local next_id = redis.call('GET', 'pd:cust:' .. survivor .. ':merged_into')
while next_id do
  survivor = next_id
  next_id = redis.call('GET', 'pd:cust:' .. survivor .. ':merged_into')
end
if redis.call('EXISTS', 'pd:cust:' .. survivor .. ':idn') == 0 and survivor == named then
  return cjson.encode({error = 'no customer ' .. named, status = 404})
end

local ids = {survivor}
for _, merged in ipairs(redis.call('SMEMBERS', 'pd:cust:' .. survivor .. ':merged_from')) do
  if merged ~= survivor then table.insert(ids, merged) end
end

for _, id in ipairs(ids) do
  local prefix = 'pd:cust:' .. id
  for _, identity in ipairs(redis.call('SMEMBERS', prefix .. ':idn')) do
    if redis.call('GET', 'pd:idn:' .. identity) == id then
      redis.call('DEL', 'pd:idn:' .. identity)
    end
    -- The WeCom consultant who added this contact (shared/wecom.py): it names the contact.
    if string.sub(identity, 1, 22) == 'wecom_external_userid:' then
      redis.call('DEL', 'pd:wecom:consultant:' .. string.sub(identity, 23))
    end
  end
  for _, merge_id in ipairs(redis.call('HKEYS', 'pd:joining:' .. id)) do
    redis.call('ZREM', 'pd:joining', id .. '|' .. merge_id)
  end
  redis.call('DEL', prefix .. ':idn', prefix .. ':merged_into', prefix .. ':merged_from', 'pd:joining:' .. id)
  for _, day in ipairs(request.days) do
    redis.call('DEL', prefix .. ':merges:' .. day)
  end
end

local record = cjson.encode({customer_id = survivor, erased_at = request.at, by = request.by,
  customer_ids = ids, schema_version = 1})
redis.call('HSET', 'pd:erased', survivor, record)
for i = 2, #ids do
  redis.call('HSET', 'pd:erased', ids[i], cjson.encode({erased_with = survivor}))
end
redis.call('INCR', 'pd:erased:version')
redis.call('SADD', 'pd:erased:pending', survivor)
return record
