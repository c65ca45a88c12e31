-- wrk script for bench/ingest.py: every request carries fresh, contract-valid touchpoint events.
--
-- Arguments (after `--`): mode ("single" | "batch" | "seed"), events per batch, customers in the
-- pool, pool token (hex; names this bench run's identities), run token (8 hex digits; unique per
-- wrk run, so event ids never repeat across runs), first phone number of the pool, wrk threads.
-- "seed" posts batches of one event per pool customer linking all its identifiers but the phone,
-- then stops: afterwards resolution mostly finds existing customers, as in steady operation,
-- while phones seen first at a dealer still create customers that a lead form merges later.
-- The touchpoint key comes from the environment (BENCH_API_KEY) so it stays off the command line.
--
-- Output: "progress <thread> <unix s> <accepted events> <non-202 responses>" on stderr about once
-- a second per thread, and "result <name> <values...>" lines on stdout when the run is done.

local format, random, concat, find, match = string.format, math.random, table.concat, string.find, string.match

local threads = {}

-- Runs in wrk's main Lua state once per thread, before the thread's init().
function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_index", #threads)
end

-- Per-thread counters are globals: done() reads them from each thread with thread:get().
accepted, duplicates, rejected_in_202 = 0, 0, 0
statuses, samples = {}, {}

local mode, batch_size, customers, pool, run_token, phone_base, thread_count
local seq, tick, others = 0, 0, 0
local next_seed, seed_answers, seed_requests = 0, 0, 0
local now_second, now_text = -1, ""

-- UUID v4 layout; unique by construction within a run (thread index + sequence number) and
-- across runs (the run token), with random bits where a v4 id has them.
local function event_id()
  seq = seq + 1
  return format("%s-%04x-4%03x-%04x-%08x%04x", run_token, thread_index, random(0, 0xfff),
    0x8000 + random(0, 0x3fff), seq, random(0, 0xffff))
end

-- occurred_at in China time with an explicit offset; formatted once per second, not per event.
local function occurred_at()
  local t = os.time()
  if t ~= now_second then
    now_second = t
    now_text = os.date("!%Y-%m-%dT%H:%M:%S", t - random(0, 2) + 8 * 3600) .. "+08:00"
  end
  return now_text
end

-- Identifiers of customer k in each channel; the same k always yields the same values, so
-- resolution hits existing customers, and events carrying two of them link (and merge) them.
local function wecom(k) return format('"wecom_external_userid":"wm%s%x"', pool, k) end
local function unionid(k) return format('"unionid":"o6_%s%x"', pool, k) end
local function openid(k) return format('"openid":"oA%s%x"', pool, k) end
local function app_user(k) return format('"app_user_id":"u%s%x"', pool, k) end
local function device(k) return format('"device_id":"dev-%s%x"', pool, k) end
local function phone(k) return format('"phone":"%.0f"', phone_base + k) end

local function linked(a, b) return function(k) return a(k) .. "," .. b(k) end end

local MODELS = { "id3", "id4", "id6", "id7" }
local TOPICS = { "tech", "family", "range", "design", "price" }
local VALUE_POINTS = { "rational", "emotional" }

local function none() return "" end
local function content()
  return format('"content_id":"c-%03d","value_point":"%s","topics":["%s"],"price_related":%s',
    random(400), VALUE_POINTS[random(2)], TOPICS[random(#TOPICS)], random(8) == 1 and "true" or "false")
end
local function model() return format('"vehicle_model":"%s"', MODELS[random(#MODELS)]) end
local function dealer() return format('"dealer_id":"dlr-%02d"', random(60)) end
local function amount() return format('"amount":%d.%02d', random(50, 3000), random(0, 99)) end
local function action() return format('"action_id":"act-%06d"', random(999999)) end
local function watch() return format('"duration_s":%d', random(30, 5400)) end
local function consent() return '"channel":"wecom_1v1"' end
local function login() return '"method":"sms"' end

-- Touchpoints: weight (of 100), source, identities carried, event types with their properties.
-- About one event in eight links two identifiers, as first contacts across channels do.
local TOUCHPOINTS = {
  { 30, "wecom", wecom, { { "wecom.message_in", none }, { "wecom.message_in", none }, { "content.view", content },
    { "content.click", content }, { "content.share", content }, { "content.favorite", content },
    { "campaign.opened", action }, { "campaign.clicked", action }, { "wecom.group_joined", none },
    { "consent.granted", consent } } },
  { 4, "wecom", linked(wecom, unionid), { { "wecom.friend_added", none } } },
  { 17, "mini_program", openid, { { "mini_program.visit", none }, { "mini_program.visit", none },
    { "content.view", content }, { "content.click", content }, { "config.build", model },
    { "coupon.claimed", none }, { "survey.answered", none } } },
  { 4, "mini_program", linked(openid, unionid), { { "mini_program.visit", none } } },
  { 8, "official_account", unionid, { { "content.view", content }, { "content.click", content },
    { "content.favorite", content } } },
  { 17, "app", app_user, { { "content.view", content }, { "content.click", content }, { "config.build", model },
    { "community.post", none }, { "referral.made", none }, { "test_drive.booked", model },
    { "mall.purchase", amount }, { "service.maintenance", amount } } },
  { 6, "app", device, { { "content.view", content } } },
  { 3, "app", linked(app_user, device), { { "custom.app_login", login } } },
  { 4, "ad", device, { { "ad.click", none } } },
  { 2, "ad", linked(device, phone), { { "ad.lead_form", none } } },
  { 3, "live_stream", unionid, { { "live.watch", watch }, { "live.comment", none } } },
  { 2, "dealer_store", phone, { { "store.visit", dealer }, { "dealer.followup", dealer },
    { "quote.requested", model }, { "test_drive.completed", model } } },
}

-- One slot per weight point, so picking a touchpoint is a single random index.
local slots = {}
for _, touchpoint in ipairs(TOUCHPOINTS) do
  for _ = 1, touchpoint[1] do table.insert(slots, touchpoint) end
end

-- A few customers are much more active than most: squaring a uniform draw skews towards low k.
local function customer()
  local u = random()
  return math.floor(customers * u * u)
end

local function event_json()
  local touchpoint = slots[random(#slots)]
  local kind = touchpoint[4][random(#touchpoint[4])]
  return format('{"event_id":"%s","type":"%s","source":"%s","occurred_at":"%s","identities":{%s},'
    .. '"properties":{%s},"schema_version":1}',
    event_id(), kind[1], touchpoint[2], occurred_at(), touchpoint[3](customer()), kind[2]())
end

local function batch_json()
  local events = {}
  for i = 1, batch_size do events[i] = event_json() end
  return '{"events":[' .. concat(events, ",") .. "]}"
end

-- This thread seeds customers thread_index - 1, + thread_count, ... (wrapping once all are sent,
-- as connections may ask for a request or two before the thread stops).
local function seed_json()
  local events = {}
  for i = 1, batch_size do
    local k = (thread_index - 1 + thread_count * next_seed) % customers
    next_seed = next_seed + 1
    events[i] = format('{"event_id":"%s","type":"custom.bench_seed","source":"app","occurred_at":"%s",'
      .. '"identities":{%s,%s,%s,%s,%s},"properties":{"pool":"%s"},"schema_version":1}',
      event_id(), occurred_at(), wecom(k), unionid(k), openid(k), app_user(k), device(k), pool)
  end
  return '{"events":[' .. concat(events, ",") .. "]}"
end

function init(args)
  mode, batch_size, customers = args[1], tonumber(args[2]), tonumber(args[3])
  pool, run_token, phone_base, thread_count = args[4], args[5], tonumber(args[6]), tonumber(args[7])
  local share = math.floor((customers - thread_index) / thread_count) + 1
  seed_requests = math.ceil(share / batch_size)
  math.randomseed(tonumber(run_token, 16) + thread_index)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["X-Api-Key"] = os.getenv("BENCH_API_KEY") or "local-touchpoint-key"
end

function request()
  local body
  if mode == "single" then
    body = event_json()
  elseif mode == "batch" then
    body = batch_json()
  else
    body = seed_json()
  end
  return wrk.format(nil, nil, nil, body)
end

local function count_duplicates(body)
  local start = find(body, '"duplicate":true', 1, true)
  while start do
    duplicates = duplicates + 1
    start = find(body, '"duplicate":true', start + 16, true)
  end
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if status == 202 then
    -- Count what the server says it accepted: a 202 batch may still reject some events.
    local n = tonumber(match(body, '"accepted":%s*(%d+)')) or 0
    accepted = accepted + n
    if mode ~= "single" then rejected_in_202 = rejected_in_202 + batch_size - n end
    count_duplicates(body)
  else
    others = others + 1
    if not samples[status] then samples[status] = body:sub(1, 300):gsub("%s+", " ") end
  end
  if mode == "seed" then
    seed_answers = seed_answers + 1
    -- wrk's main thread sleeps for the whole -d whatever the threads do: tell bench/wrk.py,
    -- which interrupts wrk (SIGINT makes it stop and report) once every thread is done.
    if seed_answers == seed_requests then io.stderr:write(format("seeded %d\n", thread_index)) end
  end
  local t = os.time()
  if t ~= tick then
    tick = t
    io.stderr:write(format("progress %d %d %d %d\n", thread_index, t, accepted, others))
  end
end

local function emit(...) io.write("result ", concat({ ... }, " "), "\n") end

function done(summary, latency, requests)
  local totals, codes, bodies = { accepted = 0, duplicates = 0, rejected_in_202 = 0 }, {}, {}
  for _, thread in ipairs(threads) do
    for name in pairs(totals) do totals[name] = totals[name] + thread:get(name) end
    for code, n in pairs(thread:get("statuses")) do codes[code] = (codes[code] or 0) + n end
    for code, text in pairs(thread:get("samples")) do bodies[code] = text end
  end
  emit("duration_us", format("%d", summary.duration))
  emit("requests", format("%d", summary.requests))
  for name, n in pairs(totals) do emit(name, format("%d", n)) end
  for _, q in ipairs({ 50, 99 }) do emit("latency_us", q, format("%d", latency:percentile(q))) end
  for code, n in pairs(codes) do emit("status", code, format("%d", n)) end
  for code, text in pairs(bodies) do emit("sample", code, text) end
  for name, n in pairs(summary.errors) do emit("socket_error", name, format("%d", n)) end
end
