-- wrk script shared by every bench run. The Python harness passes the requests in the
-- environment (never on the command line, so credentials stay out of `ps`):
--   BENCH_METHOD        GET or POST
--   BENCH_BODY          request body (optional)
--   BENCH_CONTENT_TYPE  Content-Type header (optional)
--   BENCH_REQUESTS      newline-separated "path<TAB>Authorization header value" items;
--                       each connection cycles through them, starting at its own offset.
-- done() prints one line "BENCH_JSON {...}" with counts and latency percentiles (us).

local requests_ = {}
local count = 0
local next_index = 0
local threads_started = 0

function setup(thread)
  -- Spread the threads over the item list so they do not hit the same rows in lockstep.
  thread:set("thread_offset", threads_started * 7919)
  threads_started = threads_started + 1
end

function init(args)
  local method = os.getenv("BENCH_METHOD") or "GET"
  local body = os.getenv("BENCH_BODY")
  if body == "" then body = nil end
  local content_type = os.getenv("BENCH_CONTENT_TYPE")
  for line in (os.getenv("BENCH_REQUESTS") or "/"):gmatch("[^\n]+") do
    local path, auth = line:match("^([^\t]*)\t?(.*)$")
    local headers = {}
    if auth ~= nil and auth ~= "" then headers["Authorization"] = auth end
    if content_type ~= nil and content_type ~= "" then headers["Content-Type"] = content_type end
    count = count + 1
    -- Pre-formatted once: the per-request cost in wrk stays a table lookup.
    requests_[count] = wrk.format(method, path, headers, body)
  end
  next_index = (thread_offset or 0) % count
end

function request()
  next_index = next_index % count + 1
  return requests_[next_index]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, "connect_errors": %d, ' ..
    '"read_errors": %d, "write_errors": %d, "status_errors": %d, "timeouts": %d, ' ..
    '"p50_us": %d, "p90_us": %d, "p99_us": %d, "mean_us": %.1f, "max_us": %d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.mean, latency.max))
end
