-- Unbind identifiers from a customer: they form one new customer together (a wrong merge undone,
-- or a shared identifier taken away). Atomic, like resolve.lua, whose keys it uses.
-- ARGV[1]: {"customer_id", "identities": ["type:value", ...], "at", "by"}
-- Returns {"customer_id": new id} or {"error": why, "status": 404|409}.
local request = cjson.decode(ARGV[1])
local from = request.customer_id
if redis.call('EXISTS', 'pd:cust:' .. from .. ':idn') == 0 then
  local survivor = redis.call('GET', 'pd:cust:' .. from .. ':merged_into')
  if survivor then
    return cjson.encode({error = 'merged into ' .. survivor .. ': unbind from the survivor', status = 409})
  end
  return cjson.encode({error = 'no customer ' .. from, status = 404})
end
for _, identity in ipairs(request.identities) do
  if redis.call('GET', 'pd:idn:' .. identity) ~= from then
    return cjson.encode({error = 'not an identifier of ' .. from .. ': ' .. string.match(identity, '^[^:]+'), status = 409})
  end
end
if redis.call('SCARD', 'pd:cust:' .. from .. ':idn') <= #request.identities then
  return cjson.encode({error = 'that is every identifier of ' .. from .. ': nothing would stay', status = 409})
end
local into = 'cus_' .. redis.call('INCR', 'pd:customer:seq')
for _, identity in ipairs(request.identities) do
  redis.call('SET', 'pd:idn:' .. identity, into)
  redis.call('SREM', 'pd:cust:' .. from .. ':idn', identity)
  redis.call('SADD', 'pd:cust:' .. into .. ':idn', identity)
end
redis.call('XADD', 'pd:identity:unbinds', 'MAXLEN', '~', 10000, '*', 'at', request.at, 'by', request.by,
  'from', from, 'into', into, 'identities', cjson.encode(request.identities))
return cjson.encode({customer_id = into})
