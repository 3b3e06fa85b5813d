-- wrk script for bench/run.sh's scale section: every request carries a
-- different device credential from the file $TOKENS (one per line).
-- Each wrk thread walks its own slice of the file and wraps around. (The
-- warm-up, every credential exactly once, is `vestibule bench-warm`: wrk
-- runs for its whole duration whatever a thread does.)

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
end

function request()
  i = i + 1
  if i > last then i = first end
  return wrk.format("GET", "/_bench", { ["Authorization"] = "Bearer " .. tokens[i] })
end
