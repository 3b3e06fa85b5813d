#!/usr/bin/env bash
# CPU time and context switches per request of vestibule in-path
# (bench/run.sh's scenario 4: trusted Authelia headers, remote profile),
# two builds side by side, alternated round by round (issue 17).
#
#   bench/cpu_per_request.sh OLD_BINARY NEW_BINARY [ROUNDS] [SECONDS]
#
# Either binary may be the word `nginx`: nginx `proxy_pass` to the same
# upstream (bench/run.sh's scenario 2, one worker, `keepalive 128`), its
# worker measured the same way, for the side-by-side figures the issue asks
# for. With PROFILE_DIR=dir, the last round also runs `perf record -g` on
# each server and writes dir/<old|new>.txt, the top of `perf report`.
# Columns: req/s, server CPU µs per request, context switches per request,
# and wrk's p50 and p99 latency.
#
# Throughput on a shared machine swings with other people's load; CPU time
# per request (`perf stat -e task-clock` on the server's process, divided by
# the requests wrk counted) moves much less, so two builds can be compared
# on a busy machine. The upstream's CPU is not counted. Servers on CPU 0,
# wrk on CPU 1, 64 connections, as in bench/run.sh; its own ports, so it
# can run beside it.
set -euo pipefail

OLD=$1 NEW=$2 ROUNDS=${3:-3} SECONDS_PER=${4:-5}
for tool in wrk perf taskset; do
  command -v "$tool" >/dev/null || { echo "cpu_per_request: $tool is missing" >&2; exit 1; }
done
# PORT_BASE moves both ports, to run beside another copy of this script.
P_UP=${PORT_BASE:-29200} P_VEST=$((${PORT_BASE:-29200} + 1))
WORK=$(mktemp -d)
PIDS=()
BENCH_TAG=cpu_per_request
# shellcheck source=bench/lib.sh
. bench/lib.sh
trap bench_cleanup EXIT

# The upstream is whichever build is not nginx.
WHOAMI=$OLD; [ "$OLD" = nginx ] && WHOAMI=$NEW
taskset -c 0 "$WHOAMI" whoami --listen 127.0.0.1:$P_UP >"$WORK/whoami.log" 2>&1 &
PIDS+=($!)
wait_port $P_UP

cat >"$WORK/vestibule.toml" <<EOF
[server]
listen = ["127.0.0.1:$P_VEST"]
admin_listen = ""
[log]
level = "warn"
[source.headers]
dialect = "authelia"
trusted_proxies = ["127.0.0.1"]
provisioning = "auto"
[database]
data_dir = "$WORK/data-@WHICH@"
[accounts]
cache_ttl = "60s"
[[route]]
name = "bench"
upstream = "http://127.0.0.1:$P_UP"
credentials = ["bearer"]
EOF

mkdir -p "$WORK/nginx/logs"
{ nginx_conf_head $P_UP; cat <<EOF
  server {
    listen 127.0.0.1:$P_VEST;
    location / { $NGINX_PROXY_TO_APP }
  }
}
EOF
} >"$WORK/nginx/nginx.conf"

ID=(-H "Remote-User: bench-0" -H "Remote-Groups: users" -H "Remote-Email: bench-0@example.com" -H "Remote-Name: Bench User 0")
URL="http://127.0.0.1:$P_VEST/_bench"

measure() { # binary which last-round -> "requests task-clock-ms context-switches p50 p99"
  local pid
  if [ "$1" = nginx ]; then
    taskset -c 0 nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -g 'daemon off;' >"$WORK/nginx.log" 2>&1 &
    pid=$!
    wait_port $P_VEST
    # The worker does the proxying; the master only watches it.
    pid=$(pgrep -P "$pid" | head -1)
  else
    # A data directory per build: the newer one migrates its schema forward,
    # and the older one rightly refuses a schema newer than itself.
    sed "s/@WHICH@/$2/" "$WORK/vestibule.toml" >"$WORK/vestibule-$2.toml"
    taskset -c 0 "$1" serve --config "$WORK/vestibule-$2.toml" >"$WORK/vestibule.log" 2>&1 &
    pid=$!
    wait_port $P_VEST
  fi
  # Warm-up: the account is provisioned, the cache and the upstream pool
  # filled, before anything is counted.
  taskset -c 1 wrk -t2 -c64 -d1s "${ID[@]}" "$URL" >/dev/null
  perf stat -x, -e task-clock,context-switches -p "$pid" -o "$WORK/perf.csv" -- sleep "$((SECONDS_PER + 1))" &
  local perf_pid=$! record_pid=
  if [ -n "${PROFILE_DIR:-}" ] && [ "$3" = last ]; then
    perf record -q -g -p "$pid" -o "$WORK/$2.data" -- sleep "$SECONDS_PER" >/dev/null 2>&1 &
    record_pid=$!
  fi
  sleep 0.5
  local out
  out=$(taskset -c 1 wrk -t2 -c64 -d"${SECONDS_PER}s" --latency "${ID[@]}" "$URL")
  wait "$perf_pid"
  if [ -n "$record_pid" ]; then
    wait "$record_pid" || true
    mkdir -p "$PROFILE_DIR"
    # Where the time goes by object (kernel, libc, the server), then the
    # top symbols.
    { perf report -i "$WORK/$2.data" --stdio --no-children -g none --sort dso 2>/dev/null \
        | grep -v "^#" | grep -v "^$" | head -8
      echo
      perf report -i "$WORK/$2.data" --stdio --no-children -g none --sort dso,sym --percent-limit 0.5 2>/dev/null \
        | grep -v "^#" | grep -v "^$" | head -40
    } >"$PROFILE_DIR/$2.txt" || true
  fi
  if [ "$1" = nginx ]; then
    kill "$(cat "$WORK/nginx/nginx.pid")" 2>/dev/null || true
    sleep 0.3
  else
    kill "$pid"; wait "$pid" 2>/dev/null || true
  fi
  local requests non2xx clock switches
  requests=$(awk '/requests in/ {print $1}' <<<"$out")
  non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $5}' <<<"$out")
  [ -z "$non2xx" ] || { echo "cpu_per_request: $non2xx non-2xx answers" >&2; exit 1; }
  clock=$(awk -F, '$3 ~ /task-clock/ {print $1}' "$WORK/perf.csv")
  switches=$(awk -F, '$3 ~ /context-switches/ {print $1}' "$WORK/perf.csv")
  local p50 p99
  p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  echo "$requests $clock $switches $p50 $p99"
}

printf '%-5s %-4s %10s %10s %12s %12s %9s %9s\n' round build req/s 'µs/req' 'cs/req' 'requests' p50 p99
for round in $(seq 1 "$ROUNDS"); do
  last=no; [ "$round" = "$ROUNDS" ] && last=last
  for which in old new; do
    bin=$OLD; [ "$which" = new ] && bin=$NEW
    read -r requests clock switches p50 p99 <<<"$(measure "$bin" "$which" "$last")"
    # perf counts over SECONDS_PER + 1 s, wrk over SECONDS_PER: the extra
    # second is idle (no requests), and charged to the requests anyway.
    awk -v r="$round" -v w="$which" -v n="$requests" -v c="$clock" -v s="$switches" -v d="$SECONDS_PER" \
      -v p50="$p50" -v p99="$p99" \
      'BEGIN { printf "%-5s %-4s %10.0f %10.2f %12.3f %12d %9s %9s\n", r, w, n/d, c*1000/n, s/n, n, p50, p99 }'
  done
done
