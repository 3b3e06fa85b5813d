-- wrk script for bench/run.sh's scale section: every request carries a
-- different device credential from the file $TOKENS (one per line).
-- Each wrk thread walks its own slice of the file. With ONCE=1 a thread
-- stops once it has had an answer for each credential of its slice (the
-- cache warm-up); otherwise it wraps around (the measurement).

local n_threads = 0

function setup(thread)
  thread:set("id", n_threads)
  n_threads = n_threads + 1
end

function init(args)
  tokens = {}
  for line in io.lines(os.getenv("TOKENS")) do tokens[#tokens + 1] = line end
  local nt = tonumber(os.getenv("WRK_THREADS"))
  local per = math.floor(#tokens / nt)
  first = id * per + 1
  last = (id == nt - 1) and #tokens or (first + per - 1)
  i = first - 1
  once = os.getenv("ONCE") == "1"
  answered = 0
end

function request()
  i = i + 1
  if i > last then i = first end
  return wrk.format("GET", "/_bench", { ["Authorization"] = "Bearer " .. tokens[i] })
end

function response(status, headers, body)
  answered = answered + 1
  if once and answered >= (last - first + 1) then wrk.thread:stop() end
end
