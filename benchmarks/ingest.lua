-- wrk script for benchmarks/ingest.py: signed kie.ai callbacks, a fresh task id per request.
--
--   wrk -t1 -c50 -d5s -s benchmarks/ingest.lua http://127.0.0.1:PORT -- PLAN_FILE
--
-- PLAN_FILE (written by ingest.py) holds, one per line: the request path, the signature
-- timestamp, the task id prefix, the JSON body before the task id, the body after it, then one
-- signature per request: line k signs task id PREFIX .. k. Signing is done ahead in Python, so
-- this script only concatenates strings. Past the last signature the ids start again (those
-- requests would be duplicates); done() reports how many, and ingest.py then refuses the run.
-- done() prints one line: "WRK_RESULT " and a JSON object.

local path, stamp, prefix, head, tail
local signatures = {}
local count, sent, reused = 0, 0, 0

function init(args)
  local file = assert(io.open(args[1], "r"))
  path = file:read("*l")
  stamp = file:read("*l")
  prefix = file:read("*l")
  head = file:read("*l")
  tail = file:read("*l")
  for line in file:lines() do
    count = count + 1
    signatures[count] = line
  end
  file:close()
end

function request()
  sent = sent + 1
  local n = sent
  if n > count then
    reused = reused + 1
    n = (n - 1) % count + 1
  end
  local task_id = prefix .. n
  return wrk.format("POST", path, {
    ["Content-Type"] = "application/json",
    ["X-Webhook-Timestamp"] = stamp,
    ["X-Webhook-Signature"] = signatures[n],
  }, head .. task_id .. tail)
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function done(summary, latency, requests)
  local reused_total = 0
  for _, thread in ipairs(threads) do
    reused_total = reused_total + (thread:get("reused") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"duration_us":%d,"requests":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d,"max_us":%d,"reused":%d}\n',
    summary.duration, summary.requests, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50.0), latency:percentile(99.0), latency.max, reused_total))
end
