-- Remember events the broker acknowledged: pd:seen:<event_id> -> customer_id, for ARGV[1] seconds.
-- ARGV[2..]: event_id, customer_id, event_id, customer_id, ...  (one call instead of one SET each)
local ttl = ARGV[1]
for i = 2, #ARGV, 2 do
  redis.call('SET', 'pd:seen:' .. ARGV[i], ARGV[i + 1], 'EX', ttl)
end
return (#ARGV - 1) / 2
