-- A network's mixed traffic for wrk: several kinds of request in fixed proportions, each kind
-- rotating over its objects; counts of answers by kind and status; a constant pause between
-- requests per connection (WRK_DELAY_MS) so the harness can hold a rate below the maximum.
--   WRK_MIX        file of tab-separated lines:
--                    K <kind> <weight> <method>     a kind of request, and its share
--                    H <kind> <Name: value>         a header of that kind
--                    V <kind> <path> <body>         one variant (rotated over); body may be ""
--   WRK_DELAY_MS   pause after each answer, per connection (default 0)
--   WRK_RUN        run name, part of every X-Request-ID: mix-<run>-<kind>-<thread>-<n>
--   WRK_OUT        file for the JSON summary
-- Every request carries its own X-Request-ID naming its kind; the service echoes it, which is
-- how an answer is counted against its kind, and how the audit trail is checked afterwards.

local kinds, order = {}, {}
for line in io.lines(os.getenv("WRK_MIX")) do
  local fields = {}
  for field in (line .. "\t"):gmatch("([^\t]*)\t") do
    table.insert(fields, field)
  end
  local tag, kind = fields[1], fields[2]
  if tag == "K" then
    kinds[kind] = {weight = tonumber(fields[3]), method = fields[4], headers = {}, variants = {}}
    table.insert(order, kind)
  elseif tag == "H" then
    local name, value = fields[3]:match("^([^:]+):%s*(.-)%s*$")
    kinds[kind].headers[name] = value
  elseif tag == "V" then
    table.insert(kinds[kind].variants, {path = fields[3], body = fields[4] ~= "" and fields[4] or nil})
  end
end

-- One cycle of kinds in proportion to their weights, interleaved.
local schedule = {}
local credit = {}
for _, kind in ipairs(order) do credit[kind] = 0 end
local total = 0
for _, kind in ipairs(order) do total = total + kinds[kind].weight end
for _ = 1, total do
  local best
  for _, kind in ipairs(order) do
    credit[kind] = credit[kind] + kinds[kind].weight
    if not best or credit[kind] > credit[best] then best = kind end
  end
  credit[best] = credit[best] - total
  table.insert(schedule, best)
end

local run = os.getenv("WRK_RUN") or "run"
local pause = tonumber(os.getenv("WRK_DELAY_MS") or "0")
local threads = {}
local next_id = 0

function setup(thread)
  next_id = next_id + 1
  thread:set("tid", next_id)
  table.insert(threads, thread)
end

local n, turns = 0, {}
counts = {}  -- global: done() reads each thread's with thread:get

function init(args)
  n = (tid or 1) * 7919
end

function request()
  n = n + 1
  local kind = schedule[(n % #schedule) + 1]
  local k = kinds[kind]
  turns[kind] = (turns[kind] or 0) + 1
  local v = k.variants[(turns[kind] % #k.variants) + 1]
  local headers = {}
  for name, value in pairs(k.headers) do headers[name] = value end
  headers["X-Request-ID"] = string.format("mix-%s-%s-%d-%d", run, kind, tid or 0, n)
  return wrk.format(k.method, v.path, headers, v.body)
end

function response(status, headers, body)
  local id = headers["X-Request-ID"] or headers["x-request-id"] or ""
  local kind = id:match("^mix%-[^-]+%-([^-]+)%-") or "unknown"
  local key = kind .. " " .. status
  counts[key] = (counts[key] or 0) + 1
end

function delay()
  return pause
end

local function num(x)
  if x ~= x or x == math.huge or x == -math.huge then return 0 end
  return x
end

function done(summary, latency, requests)
  local merged = {}
  for _, thread in ipairs(threads) do
    local theirs = thread:get("counts")
    for key, value in pairs(theirs or {}) do merged[key] = (merged[key] or 0) + value end
  end
  local parts = {}
  for key, value in pairs(merged) do
    table.insert(parts, string.format('"%s": %d', key, value))
  end
  local e = summary.errors
  local seconds = summary.duration / 1e6
  local json = string.format(
    '{"requests": %d, "duration_s": %.3f, "rps": %.2f, '
      .. '"latency_ms": {"mean": %.3f, "max": %.3f, "p50": %.3f, "p90": %.3f, "p99": %.3f}, '
      .. '"errors": {"status": %d, "connect": %d, "read": %d, "write": %d, "timeout": %d}, '
      .. '"answers": {%s}}\n',
    summary.requests, seconds, num(summary.requests / seconds),
    num(latency.mean) / 1000, num(latency.max) / 1000, latency:percentile(50) / 1000,
    latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    e.status, e.connect, e.read, e.write, e.timeout, table.concat(parts, ", "))
  local f = assert(io.open(os.getenv("WRK_OUT"), "w"))
  f:write(json)
  f:close()
end
