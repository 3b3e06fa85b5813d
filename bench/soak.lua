-- wrk script for `bench/run.sh --soak`: mixed scenarios on one gateway,
-- paced below its peak.
--
-- Requests rotate through three kinds (all to vestibule's own port):
--   in-path with trusted authelia headers (scenario 4),
--   in-path with a Bearer device credential (scenario 6, $TOKEN),
--   the verify endpoint, as a front's auth_request would call it (scenario 12).
-- Pacing: wrk has no rate limit, but a script may delay a connection's next
-- request by whole milliseconds. $DELAY_P is the probability of a 1 ms
-- pause before a request: run.sh computes it from the measured peak so the
-- average rate lands near the target (the achieved rate is reported).

local kinds = {}
local i = 0
local p = 0

function init(args)
  local token = os.getenv("TOKEN")
  p = tonumber(os.getenv("DELAY_P")) or 0
  local id = {
    ["Remote-User"] = "bench-0",
    ["Remote-Groups"] = "users",
    ["Remote-Email"] = "bench-0@example.com",
    ["Remote-Name"] = "Bench User 0",
  }
  local verify = {}
  for k, v in pairs(id) do verify[k] = v end
  verify["X-Original-URI"] = "/_bench"
  verify["X-Forwarded-Host"] = "bench"
  kinds = {
    wrk.format("GET", "/_bench", id),
    wrk.format("GET", "/_bench", { ["Authorization"] = "Bearer " .. token }),
    wrk.format("GET", "/.vestibule/verify", verify),
  }
  math.randomseed(os.time() + (tonumber(tostring(kinds):match("0x(%x+)"), 16) or 0) % 1000)
end

function delay()
  if math.random() < p then return 1 end
  return 0
end

function request()
  i = i % #kinds + 1
  return kinds[i]
end
