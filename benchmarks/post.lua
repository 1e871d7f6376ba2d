-- wrk script for benchmarks/serving.py: POSTs the file $BODY as $CONTENT_TYPE, counts answers
-- by status, stops a thread after $MAX_REQUESTS answers, and prints one JSON line that starts
-- with BENCH_JSON. Elapsed time is measured here (CLOCK_MONOTONIC through LuaJIT's FFI), so
-- requests/s stays right when the count bound ends a run before wrk's -d duration.
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock_id, bench_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local ts = ffi.new("bench_timespec")
local function now_us()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
  return tonumber(ts.tv_sec) * 1e6 + tonumber(ts.tv_nsec) / 1e3
end

local handle = assert(io.open(os.getenv("BODY"), "rb"))
wrk.method = "POST"
wrk.body = handle:read("*a")
handle:close()
wrk.headers["Content-Type"] = os.getenv("CONTENT_TYPE") or "text/csv"

local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  ok, bad, first_bad = 0, 0, 0
  limit = tonumber(os.getenv("MAX_REQUESTS") or "0")
  started = now_us()
  last = started
end

function response(status, headers, body)
  if status == 200 and #body > 0 then
    ok = ok + 1
  else
    bad = bad + 1
    if first_bad == 0 then first_bad = status end
  end
  last = now_us()
  if limit > 0 and ok + bad >= limit then
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local total_ok, total_bad, first, last_us, bad_status = 0, 0, nil, 0, 0
  for _, thread in ipairs(threads) do
    total_ok = total_ok + thread:get("ok")
    total_bad = total_bad + thread:get("bad")
    local s, l = thread:get("started"), thread:get("last")
    if first == nil or s < first then first = s end
    if l > last_us then last_us = l end
    if bad_status == 0 then bad_status = thread:get("first_bad") end
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"ok": %d, "bad": %d, "first_bad_status": %d, "elapsed_s": %.6f, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"latency_us": {"p50": %d, "p90": %d, "p99": %d, "mean": %.1f, "max": %d}}\n',
    total_ok, total_bad, bad_status, (last_us - first) / 1e6,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean, latency.max))
end
