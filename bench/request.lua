-- One wrk script for every scenario: the request comes from the environment, the result goes
-- out as JSON, so the harness neither generates Lua nor parses wrk's text output.
--   WRK_METHOD   GET, POST, ...             (default GET; the path and query are in wrk's URL)
--   WRK_HEADERS  "Name: value" lines, newline-separated
--   WRK_BODY     request body (wrk adds Content-Length)
--   WRK_OUT      file to write the JSON summary to (default: stdout)

wrk.method = os.getenv("WRK_METHOD") or "GET"

local body = os.getenv("WRK_BODY")
if body and body ~= "" then
  wrk.body = body
end

for line in (os.getenv("WRK_HEADERS") or ""):gmatch("[^\n]+") do
  local name, value = line:match("^([^:]+):%s*(.-)%s*$")
  if name then
    wrk.headers[name] = value
  end
end

-- WRK_REQUESTS: "path<TAB>body" lines; when set, each request takes the next one in turn
-- (each thread from its own starting point), so load spreads over many objects as real
-- traffic does instead of queueing on one row.
local variants = {}
for line in (os.getenv("WRK_REQUESTS") or ""):gmatch("[^\n]+") do
  local path, vbody = line:match("^([^\t]*)\t(.*)$")
  if path then
    table.insert(variants, {path = path, body = vbody ~= "" and vbody or nil})
  end
end

local turn = 0
function setup(thread)
  thread:set("first", math.random(1, 1000000))
end

function init(args)
  turn = tonumber(first) or 0
end

if #variants > 0 then
  function request()
    turn = turn + 1
    local v = variants[(turn % #variants) + 1]
    return wrk.format(nil, v.path, nil, v.body)
  end
end

-- JSON has no NaN or Infinity; an empty run must still produce parseable output.
local function num(x)
  if x ~= x or x == math.huge or x == -math.huge then
    return 0
  end
  return x
end

local function ms(us)
  return num(us) / 1000
end

function done(summary, latency, requests)
  local e = summary.errors
  local seconds = summary.duration / 1e6
  local json = string.format(
    '{"requests": %d, "duration_s": %.3f, "rps": %.2f, "bytes": %d, '
      .. '"latency_ms": {"mean": %.3f, "stdev": %.3f, "max": %.3f, '
      .. '"p50": %.3f, "p90": %.3f, "p99": %.3f}, '
      .. '"errors": {"status": %d, "connect": %d, "read": %d, "write": %d, "timeout": %d}}\n',
    summary.requests, seconds, num(summary.requests / seconds), summary.bytes,
    ms(latency.mean), ms(latency.stdev), ms(latency.max),
    ms(latency:percentile(50)), ms(latency:percentile(90)), ms(latency:percentile(99)),
    e.status, e.connect, e.read, e.write, e.timeout
  )
  local path = os.getenv("WRK_OUT")
  if path and path ~= "" then
    local f = assert(io.open(path, "w"))
    f:write(json)
    f:close()
  else
    io.write(json)
  end
end
