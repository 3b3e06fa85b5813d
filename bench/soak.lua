-- wrk script for `bench/run.sh --soak`: mixed scenarios on one gateway,
-- paced below its peak.
--
-- Requests rotate through three kinds (all to vestibule's own port):
--   in-path with trusted authelia headers (scenario 4),
--   in-path with a Bearer device credential (scenario 6, $TOKEN),
--   the verify endpoint, as a front's auth_request would call it (scenario 12).
-- Pacing: wrk has no rate limit, but a script may delay a connection's next
-- request by whole milliseconds. $DELAY_MS is the mean pause before a
-- request, made of whole milliseconds and one more taken at random for
-- the fraction: run.sh computes it from the measured peak and corrects it
-- after each window so the average rate lands near the target (the
-- achieved rate is reported).

local kinds = {}
local i = 0
local mean = 0

function init(args)
  local token = os.getenv("TOKEN")
  mean = tonumber(os.getenv("DELAY_MS")) or 0
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
  local whole = math.floor(mean)
  if math.random() < mean - whole then return whole + 1 end
  return whole
end

function request()
  i = i % #kinds + 1
  return kinds[i]
end
