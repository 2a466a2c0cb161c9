-- wrk script for bench/run.sh: every request is `GET /users/{id}` carrying a new random W3C
-- `traceparent` (trace flags from TRACE_FLAGS: "01" sampled, "00" unsampled), and the run ends
-- with one machine-readable summary line.
--
-- The request text is assembled from fixed parts around the fresh ids: wrk.format per request
-- would cost the load generator more than the header itself.

local flags = os.getenv("TRACE_FLAGS") or "01"
local random = math.random
local format = string.format
local user_id = 0
local head, tail

function init(args)
  -- Distinct sequences for distinct wrk threads and runs.
  math.randomseed(os.time() * 1000 + tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 1000)
  local host = wrk.host .. ":" .. wrk.port
  head = "GET /users/"
  tail = " HTTP/1.1\r\nHost: " .. host .. "\r\nUser-Agent: wrk\r\nAccept: application/json\r\ntraceparent: 00-"
end

function request()
  user_id = user_id % 1000 + 1
  -- 128-bit trace id and 64-bit span id in 16-bit pieces, the first never zero so neither id
  -- is ever the invalid all-zero one.
  local ids = format(
    "%04x%04x%04x%04x%04x%04x%04x%04x-%04x%04x%04x%04x",
    random(1, 0xffff), random(0, 0xffff), random(0, 0xffff), random(0, 0xffff),
    random(0, 0xffff), random(0, 0xffff), random(0, 0xffff), random(0, 0xffff),
    random(1, 0xffff), random(0, 0xffff), random(0, 0xffff), random(0, 0xffff))
  return head .. user_id .. tail .. ids .. "-" .. flags .. "\r\n\r\n"
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(format(
    "WRK requests=%d duration_us=%d p50_us=%.1f p99_us=%.1f errors=%d\n",
    summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.status + e.timeout))
end
