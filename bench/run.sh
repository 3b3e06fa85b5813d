#!/usr/bin/env bash
# vestibule end-to-end benchmarks: every scenario side by side with nginx and
# Caddy, in one run on one machine, reported as ratios. See BENCHMARKS.md.
#
#   bench/run.sh            full run: 10 s per measurement, 3 rounds (~6 min)
#   bench/run.sh --smoke    1 s per measurement, 1 round: checks every scenario
#                           answers 2xx and the table is produced; asserts no speed
#   BENCH_ONLY="4 5" bench/run.sh [--smoke]
#                           only those scenarios (full: 10 s x 3 rounds), no
#                           provider endpoints and no scale section: a quick
#                           ratio check; the other rows and ratios are absent
#   BENCH_ONLY=scale bench/run.sh [--smoke]
#                           only the scale section (1M device credentials,
#                           all cached), on ports of its own (19150-19152),
#                           so it can run beside another run
#   bench/run.sh --soak [S] S seconds (default 600) of mixed in-path and verify
#                           requests at about 80 % of the measured peak: fails on
#                           any error; reports latency percentiles over time and
#                           RSS (flat within 5 % after warm-up)
#
# Loopback only. Every server is started here and stopped by PID on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

MODE=full
DURATION=10
ROUNDS=3
if [ "${1:-}" = "--smoke" ]; then MODE=smoke; DURATION=1; ROUNDS=1; fi
SOAK_SECONDS=600
ONLY=${BENCH_ONLY:-}
if [ "${1:-}" = "--soak" ]; then MODE=soak; SOAK_SECONDS=${2:-600}; fi
CONNECTIONS=64
THREADS=2
OUT_DIR=bench/results
mkdir -p "$OUT_DIR"
TABLE="$OUT_DIR/$MODE.md"

for tool in wrk nginx caddy; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing (apt-get install wrk nginx caddy)" >&2; exit 1; }
done

# Pinning: with 2 cores, servers share core 0 and wrk gets core 1, so wrk
# never steals the servers' CPU. Recorded in the output.
NCPU=$(nproc)
if [ "$NCPU" -ge 2 ] && command -v taskset >/dev/null; then
  SERVER_CPUS=0; WRK_CPUS=1
  if [ "$NCPU" -ge 4 ]; then SERVER_CPUS=0-$((NCPU/2-1)); WRK_CPUS=$((NCPU/2))-$((NCPU-1)); fi
  PIN_SERVER=(taskset -c "$SERVER_CPUS"); PIN_WRK=(taskset -c "$WRK_CPUS")
  PINNING="servers on CPU $SERVER_CPUS, wrk on CPU $WRK_CPUS"
else
  PIN_SERVER=(); PIN_WRK=(); PINNING="none"
fi

echo "bench: building release"
cargo build --release --locked -p vestibule --bin vestibule >/dev/null 2>&1 || cargo build --release -p vestibule --bin vestibule
BIN=$PWD/target/release/vestibule
WORK=$(mktemp -d)
PIDS=()
BENCH_TAG=bench
# shellcheck source=bench/lib.sh
. bench/lib.sh
trap bench_cleanup EXIT

# Fixed loopback ports (outside the ephemeral range).
P_UP=19100      # upstream (whoami /_bench)
P_AUTH_BASE=19103 # scenario 13's auth server: a second whoami, answering /_bench
P_VEST=19101    # vestibule in-path and verify
P_NGX_PROXY=19110; P_NGX_AUTHV=19111; P_NGX_AUTHS=19112; P_NGX_AUTHH=19113
P_CADDY_PROXY=19120; P_CADDY_AUTHV=19121

# Latency values from wrk come as 123.45us / 1.23ms / 1.02s: normalise to ms.
to_ms() { awk -v v="$1" 'BEGIN { n=v; sub(/[a-z]+$/, "", n); u=v; sub(/^[0-9.]+/, "", u);
  if (u=="us") n/=1000; else if (u=="s") n*=1000; printf "%.3f", n }'; }

# ---- memory and scale: many device credentials in the store -------------
# A store of its own per size: N credentials over min(N, 100k) accounts.
# Start-up time and idle RSS first; then a working set of credentials is
# used once each (the cache warm-up, each one a cache miss); then a
# measurement that keeps cycling through that working set (cache hits),
# and the RSS after it.
# Every credential is used once: the warm-up, whose time and rate are
# reported, and after which all N are cached; the RSS is read right after
# it (all N cached, no measurement yet) and after the measurement.
run_scale() {
if [ "$MODE" = full ]; then SCALE_SIZES=(100000 1000000); else SCALE_SIZES=(1000 4000); fi
case "$ONLY" in ""|scale) ;; *) SCALE_SIZES=() ;; esac
SCALE_ROWS=()
for N in "${SCALE_SIZES[@]+"${SCALE_SIZES[@]}"}"; do
  SD="$WORK/scale-$N"; mkdir -p "$SD"
  cat >"$SD/vestibule.toml" <<EOF
[server]
listen = ["127.0.0.1:$P_SCALE"]
admin_listen = ""
[log]
level = "warn"
[source.headers]
dialect = "authelia"
trusted_proxies = ["127.0.0.1"]
[database]
data_dir = "$SD/data"
[accounts]
cache_ttl = "1h"
[[route]]
name = "bench"
upstream = "http://127.0.0.1:$P_UP"
credentials = ["bearer"]
EOF
  ACCTS=$(( N < 100000 ? N : 100000 ))
  S0=$(date +%s%N)
  "$BIN" bench-seed --config "$SD/vestibule.toml" --accounts "$ACCTS" --devices "$N" \
    --route bench --tokens-out "$SD/tokens.txt" >/dev/null
  SEED_S=$(awk -v ns=$(( $(date +%s%N) - S0 )) 'BEGIN { printf "%.1f", ns / 1e9 }')
  T0=$(date +%s%N)
  "${PIN_SERVER[@]}" "$BIN" serve --config "$SD/vestibule.toml" >"$SD/out" 2>"$SD/err" &
  SPID=$!; PIDS+=($SPID)
  wait_port $P_SCALE
  UP_MS=$(( ($(date +%s%N) - T0) / 1000000 ))
  sleep 0.5
  RSS0=$(awk '/VmRSS/ {print $2}' "/proc/$SPID/status")
  # The warm-up: every credential once, each a cache miss (one indexed
  # query). wrk cannot stop after a number of requests, hence bench-warm.
  # The measurement then cycles through all of them (cache hits).
  read -r WARM_N WARM_BAD WARM_S <<<"$("${PIN_WRK[@]}" "$BIN" bench-warm --tokens "$SD/tokens.txt" \
    --url "http://127.0.0.1:$P_SCALE/_bench" --concurrency "$CONNECTIONS" || true)"
  if [ -z "${WARM_N:-}" ]; then WARM_BAD="no answer"; elif [ "$WARM_BAD" = "0" ]; then WARM_BAD=""; fi
  WARM_RATE=$(awk -v n="${WARM_N:-0}" -v s="${WARM_S:-0}" 'BEGIN { printf "%.0f", (s > 0) ? n / s : 0 }')
  RSS_CACHED=$(awk '/VmRSS/ {print $2}' "/proc/$SPID/status")
  out=$(TOKENS="$SD/tokens.txt" WRK_THREADS=$THREADS "${PIN_WRK[@]}" wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" \
    --latency -s bench/tokens.lua "http://127.0.0.1:$P_SCALE/_bench" 2>&1)
  RPS=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  P99=$(to_ms "$(awk '$1=="99%" {print $2}' <<<"$out")")
  BAD=$(awk '/Non-2xx or 3xx responses:/ {print $5}' <<<"$out")
  RSS1=$(awk '/VmRSS/ {print $2}' "/proc/$SPID/status")
  kill "$SPID"; wait "$SPID" 2>/dev/null || true
  if [ -n "${WARM_BAD:-}" ] || [ -n "${BAD:-}" ] || [ -z "$RPS" ]; then
    echo "bench: scale $N answered non-2xx (warm-up ${WARM_BAD:-0}, measurement ${BAD:-0})" >&2
    FAILED=1
  fi
  # The target: all of 1M cached in ≤ 300 MB (MB: 10^6 bytes).
  FITS=$(awk -v k="$RSS_CACHED" 'BEGIN { print (k * 1024 <= 300e6) ? "yes" : "no" }')
  printf '  scale %8d credentials: seed %ss, start-up %d ms, RSS idle %d KiB, warm-up %s requests in %ss (%s/s), RSS all cached %d KiB (<= 300 MB: %s), then %s req/s, p99 %s ms, RSS %d KiB\n' \
    "$N" "$SEED_S" "$UP_MS" "$RSS0" "$WARM_N" "$WARM_S" "$WARM_RATE" "$RSS_CACHED" "$FITS" "$RPS" "$P99" "$RSS1"
  SCALE_ROWS+=("| $N | $ACCTS | $SEED_S | $UP_MS | $(( RSS0 / 1024 )) | $WARM_N in ${WARM_S} s ($WARM_RATE/s) | $(( RSS_CACHED * 1024 / 1000000 )) ($FITS) | $(( RSS1 * 1024 / 1000000 )) | ${RPS%.*} | $P99 |")
  rm -rf "$SD"
done
}

scale_table() {
  echo "Memory and scale: device credentials in the store (SQLite); every one used once (the warm-up: each a cache miss, one query), so all are cached; then requests cycling through all of them for ${DURATION}s (cache hits). RSS in MB (10^6 bytes); target at 1M: ≤ 300 MB with all cached."
  echo
  echo "| credentials in store | accounts | seed s | start-up ms | RSS idle MiB | warm-up (rate) | RSS all cached MB (≤ 300) | RSS after measurement MB | req/s | p99 ms |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
  for r in "${SCALE_ROWS[@]}"; do echo "$r"; done
}

P_SCALE=19102
if [ "$ONLY" = scale ]; then
  # Ports of its own: this mode may run beside a full run.
  P_UP=19150; P_SCALE=19152
fi
"${PIN_SERVER[@]}" "$BIN" whoami --listen 127.0.0.1:$P_UP >"$WORK/whoami.log" 2>&1 &
PIDS+=($!)
wait_port $P_UP
if [ "$ONLY" = scale ]; then
  FAILED=0
  run_scale
  TABLE="$OUT_DIR/scale.md"
  { echo "### vestibule scale section ($MODE)"; echo
    echo "- date: $(date -u +%Y-%m-%dT%H:%MZ); commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "- machine: $(nproc) CPUs, kernel $(uname -r); pinning: $PINNING"; echo
    scale_table; } >"$TABLE"
  echo; cat "$TABLE"
  if [ "$FAILED" -ne 0 ]; then echo "bench: the scale section failed" >&2; exit 1; fi
  exit 0
fi
# Scenario 13's auth server: the same minimal hyper handler (`/_bench`
# answers 200 `ok`), in a process of its own on its own port, so nginx's
# auth subrequest leaves nginx as scenario 9's does, and costs only a hop.
"${PIN_SERVER[@]}" "$BIN" whoami --listen 127.0.0.1:$P_AUTH_BASE >"$WORK/whoami-auth.log" 2>&1 &
PIDS+=($!)
wait_port $P_AUTH_BASE

cat >"$WORK/vestibule.toml" <<EOF
[server]
listen = ["127.0.0.1:$P_VEST"]
admin_listen = ""
[log]
level = "warn"
[source.headers]
dialect = "authelia"
trusted_proxies = ["127.0.0.1"]
[database]
data_dir = "$WORK/data"
[accounts]
cache_ttl = "60s"
[assertions]
issuer = "https://bench.invalid"
[[route]]
name = "bench"
upstream = "http://127.0.0.1:$P_UP"
credentials = ["bearer"]
# Scenario 8: the same app and identity as scenario 4, plus a signed
# assertion (its audience: the host).
[[route]]
name = "signed"
host = "signed.bench"
upstream = "http://127.0.0.1:$P_UP"
assertion = true
# Scenario 7: the same app as scenario 4, reached with an opaque access
# token of the provider: a client_credentials token of bench-svc, minted
# at setup through the real token endpoint (a route that allows service
# clients; the identity is the client).
[[route]]
name = "tokens"
host = "tokens.bench"
upstream = "http://127.0.0.1:$P_UP"
access_tokens = { clients = ["bench-svc"], service_clients = true }
[oidc_provider]
issuer = "https://bench.invalid"
# bench-svc: client_credentials (scenario 7, token-endpoint throughput);
# bench-web: a first-party code client (userinfo throughput).
[[oidc_provider.client]]
client_id = "bench-svc"
kind = "confidential"
secret_sha256 = "$(printf '%s' bench-secret | sha256sum | cut -d' ' -f1)"
grants = ["client_credentials"]
scopes = ["bench"]
access_token_lifetime = "1h"
[[oidc_provider.client]]
client_id = "bench-web"
kind = "confidential"
secret_sha256 = "$(printf '%s' bench-secret | sha256sum | cut -d' ' -f1)"
redirect_uris = ["http://127.0.0.1/cb"]
consent = "implicit"
require_pkce = false
access_token_lifetime = "1h"
EOF
# One account (the authelia user "bench-0") and one device credential for
# scenario 6; the scale section below seeds far more in a store of its own.
"$BIN" bench-seed --config "$WORK/vestibule.toml" --accounts 1 --devices 1 \
  --route bench --tokens-out "$WORK/token.txt" >/dev/null
TOKEN=$(head -n1 "$WORK/token.txt")
T0=$(date +%s%N)
"${PIN_SERVER[@]}" "$BIN" serve --config "$WORK/vestibule.toml" >"$WORK/vestibule.out" 2>"$WORK/vestibule.err" &
VEST_PID=$!
PIDS+=($VEST_PID)
wait_port $P_VEST
STARTUP_MS=$(( ($(date +%s%N) - T0) / 1000000 ))
sleep 0.5
RSS_IDLE_KB=$(awk '/VmRSS/ {print $2}' "/proc/$VEST_PID/status")

if [ "$MODE" = soak ]; then
  # ---- soak: mixed scenarios 4, 6 and 12 on the gateway, paced ----------
  # Peak first (a few seconds unpaced), then windows of the soak at ~80 % of it.
  # Pacing: at the peak a connection waits conns/peak seconds per request;
  # 80 % of it means an extra 0.25 x conns/peak of pause per request,
  # DELAY_MS (see bench/soak.lua), corrected after each window from the
  # rate it achieved.
  rss() { awk '/VmRSS/ {print $2}' "/proc/$VEST_PID/status"; }
  soak_wrk() { # seconds delay_p -> wrk output
    TOKEN="$TOKEN" DELAY_MS="$2" "${PIN_WRK[@]}" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$1s" --latency \
      -s bench/soak.lua "http://127.0.0.1:$P_VEST/_bench" 2>&1
  }
  if [ "$SOAK_SECONDS" -ge 300 ]; then PEAK_S=5; else PEAK_S=2; fi
  out=$(soak_wrk "$PEAK_S" 0)
  PEAK=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  [ -n "$PEAK" ] || { echo "bench: soak: no peak measured" >&2; echo "$out" >&2; exit 1; }
  TARGET=$(awk -v r="$PEAK" 'BEGIN { printf "%.0f", 0.8 * r }')
  DELAY_MS=$(awk -v c="$CONNECTIONS" -v r="$PEAK" 'BEGIN { printf "%.4f", 0.25 * c / r * 1000 }')
  if [ "$SOAK_SECONDS" -ge 300 ]; then WINDOW=60; else WINDOW=5; fi
  WINDOWS=$(( (SOAK_SECONDS + WINDOW - 1) / WINDOW ))
  TABLE="$OUT_DIR/soak.md"
  SOAK_FAILED=0
  ROWS=()
  RSS_AFTER_WARM=""
  echo "bench: soak ${SOAK_SECONDS}s in ${WINDOWS} windows of ${WINDOW}s; peak ${PEAK} req/s, target ${TARGET}; mean pause ${DELAY_MS} ms"
  for w in $(seq 1 "$WINDOWS"); do
    out=$(soak_wrk "$WINDOW" "$DELAY_MS")
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    p50=$(to_ms "$(awk '$1=="50%" {print $2}' <<<"$out")")
    p90=$(to_ms "$(awk '$1=="90%" {print $2}' <<<"$out")")
    p99=$(to_ms "$(awk '$1=="99%" {print $2}' <<<"$out")")
    bad=$(awk '/Non-2xx or 3xx responses:/ {print $5}' <<<"$out")
    sockerr=$(awk '/Socket errors:/ {s=0; for (i=3;i<=NF;i+=2) s+=$(i+1); print s}' <<<"$out")
    total=$(awk '/requests in/ {print $1}' <<<"$out")
    r=$(rss)
    # The first window is the warm-up; RSS is compared from the second on.
    if [ "$w" -eq 2 ] || { [ "$WINDOWS" -eq 1 ] && [ "$w" -eq 1 ]; }; then RSS_AFTER_WARM=$r; fi
    if [ -z "$rps" ] || [ "${bad:-0}" != "0" ] || [ "${sockerr:-0}" != "0" ] || [ "${total:-0}" = "0" ]; then
      echo "bench: soak window $w: non-2xx ${bad:-0}, socket errors ${sockerr:-0}, of ${total:-0}" >&2
      SOAK_FAILED=1
    fi
    # Pacing is coarse (1 ms timers): steer the mean pause towards
    # the target from what this window achieved (cycle time per connection
    # is conns/rate; the difference is the pause still missing, in ms).
    if [ -n "$rps" ]; then
      DELAY_MS=$(awk -v p="$DELAY_MS" -v c="$CONNECTIONS" -v r="$rps" -v t="$TARGET" 'BEGIN {
        p += (c / t - c / r) * 1000; if (p < 0) p = 0; if (p > 50) p = 50; printf "%.4f", p }')
    fi
    printf '  soak %3d  %8s req/s  p50 %s  p90 %s  p99 %s ms  errors %s  RSS %d KiB\n' \
      "$w" "$rps" "$p50" "$p90" "$p99" "$(( ${bad:-0} + ${sockerr:-0} ))" "$r"
    ROWS+=("| $(( w * WINDOW )) | ${rps%.*} | $p50 | $p90 | $p99 | $(( ${bad:-0} + ${sockerr:-0} )) | $r |")
  done
  RSS_END=$(rss)
  DRIFT=$(awk -v a="$RSS_AFTER_WARM" -v b="$RSS_END" 'BEGIN { printf "%.1f", (b - a) * 100 / a }')
  if awk -v d="$DRIFT" 'BEGIN { exit !(d > 5 || d < -5) }'; then
    echo "bench: soak: RSS moved ${DRIFT} % after the warm-up (limit 5 %)" >&2
    SOAK_FAILED=1
  fi
  {
    echo "### vestibule soak"
    echo
    echo "- date: $(date -u +%Y-%m-%dT%H:%MZ); commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "- machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), kernel $(uname -r); pinning: $PINNING"
    echo "- ${SOAK_SECONDS} s, mixed requests (4: trusted headers, 6: Bearer device credential, 12: verify) in turn, $CONNECTIONS connections; peak (${PEAK_S} s unpaced) ${PEAK} req/s, paced towards 80 % of it (${TARGET} req/s; the mean pause is steered after each window)"
    echo "- RSS after the warm-up window ${RSS_AFTER_WARM} KiB, at the end ${RSS_END} KiB: ${DRIFT} %"
    echo
    echo "| s | req/s | p50 ms | p90 ms | p99 ms | errors | RSS KiB |"
    echo "|---|---|---|---|---|---|---|"
    for r in "${ROWS[@]}"; do echo "$r"; done
  } >"$TABLE"
  cat "$TABLE"
  if [ "$SOAK_FAILED" -ne 0 ]; then echo "bench: soak failed" >&2; exit 1; fi
  echo "bench: soak table written to $TABLE"
  exit 0
fi

# Scenario 5: a second vestibule as the upstream OpenID provider, a third
# with [source.oidc] against it, and one login driven with curl: the
# session cookie is in OIDC_SESSION (see bench/oidc_session.sh).
# shellcheck source=bench/oidc_session.sh
. bench/oidc_session.sh
oidc_session_setup || exit 1

mkdir -p "$WORK/nginx/logs"
{ nginx_conf_head $P_UP; cat <<EOF
  upstream vest { server 127.0.0.1:$P_VEST; keepalive 128; }
  upstream auth200 { server 127.0.0.1:$P_AUTH_BASE; keepalive 128; }
  server {
    listen 127.0.0.1:$P_NGX_PROXY;
    location / { $NGINX_PROXY_TO_APP }
  }
  server {
    listen 127.0.0.1:$P_NGX_AUTHV;
    location = /_verify {
      internal;
      proxy_pass http://vest/.vestibule/verify;
      proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_pass_request_body off; proxy_set_header Content-Length "";
      proxy_set_header X-Original-URI \$request_uri;
      proxy_set_header X-Forwarded-Host \$host;
    }
    location / {
      auth_request /_verify;
      auth_request_set \$user \$upstream_http_remote_user;
      proxy_set_header Remote-User \$user;
      $NGINX_PROXY_TO_APP
    }
  }
  server {
    listen 127.0.0.1:$P_NGX_AUTHS;
    location = /_static { internal; return 200; }
    location / {
      auth_request /_static;
      $NGINX_PROXY_TO_APP
    }
  }
  # Scenario 13: scenario 9's server block, word for word but for the auth
  # server (a minimal 200 instead of vestibule), so the baseline differs
  # from 9 in nothing else.
  server {
    listen 127.0.0.1:$P_NGX_AUTHH;
    location = /_auth200 {
      internal;
      proxy_pass http://auth200/_bench;
      proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_pass_request_body off; proxy_set_header Content-Length "";
      proxy_set_header X-Original-URI \$request_uri;
      proxy_set_header X-Forwarded-Host \$host;
    }
    location / {
      auth_request /_auth200;
      $NGINX_PROXY_TO_APP
    }
  }
}
EOF
} >"$WORK/nginx/nginx.conf"
"${PIN_SERVER[@]}" nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -g 'daemon off;' &
PIDS+=($!)

cat >"$WORK/Caddyfile" <<EOF
{
  admin off
  auto_https off
}
http://127.0.0.1:$P_CADDY_PROXY {
  reverse_proxy 127.0.0.1:$P_UP
}
http://127.0.0.1:$P_CADDY_AUTHV {
  forward_auth 127.0.0.1:$P_VEST {
    uri /.vestibule/verify
    copy_headers Remote-User Remote-Groups Remote-Email Remote-Name
  }
  reverse_proxy 127.0.0.1:$P_UP
}
EOF
GOMAXPROCS=1 "${PIN_SERVER[@]}" caddy run --config "$WORK/Caddyfile" --adapter caddyfile >"$WORK/caddy.log" 2>&1 &
PIDS+=($!)
for p in $P_NGX_PROXY $P_NGX_AUTHV $P_NGX_AUTHS $P_NGX_AUTHH $P_CADDY_PROXY $P_CADDY_AUTHV; do wait_port "$p"; done

ID=(-H "Remote-User: bench-0" -H "Remote-Groups: users" -H "Remote-Email: bench-0@example.com" -H "Remote-Name: Bench User 0")
BEARER=(-H "Authorization: Bearer $TOKEN")
SIGNED=(-H "Host: signed.bench")
TOKEN_URL="http://127.0.0.1:$P_VEST/.vestibule/oidc/token"
SVC_AUTH="Basic $(printf '%s' bench-svc:bench-secret | base64 -w0)"
WEB_AUTH="Basic $(printf '%s' bench-web:bench-secret | base64 -w0)"
# Scenario 7's token, through the real token endpoint.
ACCESS=$(curl -fsS -H "Authorization: $SVC_AUTH" -d grant_type=client_credentials -d scope=bench "$TOKEN_URL" \
  | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
case "$ACCESS" in vat_*) ;; *) echo "bench: no opaque access token for scenario 7" >&2; exit 1 ;; esac
OAUTH=(-H "Host: tokens.bench" -H "Authorization: Bearer $ACCESS")
# The userinfo row's token: bench-0 signs in through the front (trusted
# headers), authorize answers with a code (implicit consent), the code is
# exchanged.
CODE_LOC=$(curl -sS -o /dev/null -w '%{redirect_url}' "${ID[@]}" \
  "http://127.0.0.1:$P_VEST/.vestibule/oidc/authorize?response_type=code&client_id=bench-web&redirect_uri=http%3A%2F%2F127.0.0.1%2Fcb&scope=openid%20profile&state=bench")
CODE=$(sed -n 's/.*[?&]code=\([^&]*\).*/\1/p' <<<"$CODE_LOC")
USER_ACCESS=$(curl -fsS -H "Authorization: $WEB_AUTH" -d grant_type=authorization_code -d "code=$CODE" \
  --data-urlencode redirect_uri=http://127.0.0.1/cb "$TOKEN_URL" | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
[ -n "$USER_ACCESS" ] || { echo "bench: no user access token for the userinfo row (authorize answered $CODE_LOC)" >&2; exit 1; }

# Scenario 8 measures nothing unless its route really signs: whoami shows
# what it received.
curl -fsS "${ID[@]}" "${SIGNED[@]}" -H "Accept: application/json" "http://127.0.0.1:$P_VEST/" \
  | grep -qi '"x-vestibule-assertion"' || { echo "bench: scenario 8's route sent no assertion" >&2; exit 1; }

# name | description | url | extra wrk args (identity headers)
SCENARIOS=(
  "1|direct to the upstream|http://127.0.0.1:$P_UP/_bench|"
  "2|nginx proxy_pass|http://127.0.0.1:$P_NGX_PROXY/_bench|"
  "3|Caddy reverse_proxy|http://127.0.0.1:$P_CADDY_PROXY/_bench|"
  "4|vestibule in-path, trusted headers (authelia), remote profile|http://127.0.0.1:$P_VEST/_bench|id"
  "5|vestibule in-path, session cookie of its OIDC login ([source.oidc], a second vestibule as the provider)|http://127.0.0.1:$P_OIDC_GW/_bench|session"
  "6|vestibule in-path, Bearer device credential|http://127.0.0.1:$P_VEST/_bench|bearer"
  "7|vestibule in-path, Bearer opaque OAuth access token (client_credentials, service client)|http://127.0.0.1:$P_VEST/_bench|oauth"
  "8|vestibule in-path, trusted headers, with a signed assertion (4 on a route with assertion = true)|http://127.0.0.1:$P_VEST/_bench|signed"
  "9|nginx auth_request → vestibule verify → upstream|http://127.0.0.1:$P_NGX_AUTHV/_bench|id"
  "10|nginx auth_request → static 200 → upstream|http://127.0.0.1:$P_NGX_AUTHS/_bench|"
  "13|nginx auth_request → minimal hyper 200 server (own port) → upstream|http://127.0.0.1:$P_NGX_AUTHH/_bench|id"
  "11|Caddy forward_auth → vestibule verify → upstream|http://127.0.0.1:$P_CADDY_AUTHV/_bench|id"
  "12|vestibule verify endpoint, directly|http://127.0.0.1:$P_VEST/.vestibule/verify|verify"
)
if [ -n "$ONLY" ]; then
  KEPT=()
  for s in "${SCENARIOS[@]}"; do
    case " $ONLY " in *" ${s%%|*} "*) KEPT+=("$s") ;; esac
  done
  [ "${#KEPT[@]}" -gt 0 ] || { echo "bench: BENCH_ONLY='$ONLY' names no scenario" >&2; exit 1; }
  SCENARIOS=("${KEPT[@]}")
fi


run_one() { # id url kind -> "rps p50 p99 non2xx"
  local url=$2 kind=$3 args=()
  case "$kind" in
    id) args=("${ID[@]}") ;;
    bearer) args=("${BEARER[@]}") ;;
    oauth) args=("${OAUTH[@]}") ;;
    session) args=(-H "Cookie: vestibule=$OIDC_SESSION") ;;
    signed) args=("${ID[@]}" "${SIGNED[@]}") ;;
    verify) args=("${ID[@]}" -H "X-Original-URI: /_bench" -H "X-Forwarded-Host: bench") ;;
  esac
  local out
  out=$("${PIN_WRK[@]}" wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency "${args[@]}" "$url" 2>&1)
  local rps p50 p99 bad total
  rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  bad=$(awk '/Non-2xx or 3xx responses:/ {print $5}' <<<"$out")
  total=$(awk '/requests in/ {print $1}' <<<"$out")
  echo "$rps $(to_ms "$p50") $(to_ms "$p99") ${bad:-0} ${total:-0}"
}

declare -A RPS P50 P99
FAILED=0
echo "bench: $MODE run, ${DURATION}s x $ROUNDS round(s), $CONNECTIONS connections, $THREADS wrk threads"
for round in $(seq 1 "$ROUNDS"); do
  # Alternate: every scenario once per round, so drift hits all alike.
  for s in "${SCENARIOS[@]}"; do
    IFS='|' read -r id desc url kind <<<"$s"
    read -r rps p50 p99 bad total <<<"$(run_one "$id" "$url" "$kind")"
    if [ -z "$rps" ] || [ "$bad" != "0" ] || [ "${total:-0}" = "0" ]; then
      echo "bench: scenario $id ($desc) answered non-2xx ($bad of $total) or nothing" >&2
      FAILED=1
    fi
    RPS[$id]+="$rps "; P50[$id]+="$p50 "; P99[$id]+="$p99 "
    printf '  round %d  %-3s %10s req/s  p50 %7s ms  p99 %7s ms  %s\n' "$round" "$id" "$rps" "$p50" "$p99" "$desc"
  done
done

# ---- the provider's endpoints: token (client_credentials) and userinfo ----
# Each client_credentials POST mints and stores a token (one write);
# userinfo is a lookup and the account's claims.
endpoint_rate() { # args... -> "rps p50 p99 bad total"
  local out rps p50 p99 bad total
  out=$("${PIN_WRK[@]}" wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency "$@" 2>&1)
  rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  # wrk prints the non-2xx line only when there were some: every field
  # gets a value, so `read` never shifts the total into `bad`.
  bad=$(awk '/Non-2xx or 3xx responses:/ {print $5}' <<<"$out")
  total=$(awk '/requests in/ {print $1}' <<<"$out")
  echo "${rps:-} $(to_ms "$p50") $(to_ms "$p99") ${bad:-0} ${total:-0}"
}
ENDPOINT_ROWS=()
ENDPOINTS=(token userinfo)
[ -z "$ONLY" ] || ENDPOINTS=()
for e in "${ENDPOINTS[@]}"; do
  case "$e" in
    token) read -r rps p50 p99 bad total <<<"$(AUTH="$SVC_AUTH" endpoint_rate -s bench/token_endpoint.lua "$TOKEN_URL")"
      desc="token endpoint, client_credentials POST (mints and stores a token)" ;;
    userinfo) read -r rps p50 p99 bad total <<<"$(endpoint_rate -H "Authorization: Bearer $USER_ACCESS" "http://127.0.0.1:$P_VEST/.vestibule/oidc/userinfo")"
      desc="userinfo GET, Bearer opaque token" ;;
  esac
  if [ -z "$rps" ] || [ "$bad" != "0" ] || [ "${total:-0}" = "0" ]; then
    echo "bench: $desc answered non-2xx (${bad:-0} of ${total:-0}) or nothing" >&2
    FAILED=1
  fi
  printf '  %-9s %10s req/s  p50 %7s ms  p99 %7s ms  %s\n' "$e" "$rps" "$p50" "$p99" "$desc"
  ENDPOINT_ROWS+=("| $desc | ${rps%.*} | $p50 | $p99 |")
done

run_scale
stats() { # values... -> "median min max"
  tr ' ' '\n' <<<"$*" | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {
    m = (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2; printf "%.0f %.0f %.0f", m, a[1], a[NR] }'
}
# A scenario's median, or nothing when it did not run (BENCH_ONLY).
median() { [ -n "${RPS[$1]:-}" ] && stats ${RPS[$1]} | cut -d' ' -f1; }
# a ÷ b to `digits` places, or "—" when either did not run.
quot() { if [ -n "$1" ] && [ -n "$2" ]; then awk -v a="$1" -v b="$2" -v d="$3" 'BEGIN { printf "%.*f", d, (b>0)? a/b : 0 }'; else echo "—"; fi; }
stats3() { tr ' ' '\n' <<<"$*" | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {
    m = (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2; printf "%.3f", m }'; }

direct=$(median 1 || true)
nginx=$(median 2 || true)
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
{
  echo "### vestibule benchmark ($MODE)"
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%MZ); commit: $COMMIT"
  echo "- machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), kernel $(uname -r)"
  echo "- wrk: $THREADS threads, $CONNECTIONS connections, ${DURATION}s per measurement, $ROUNDS round(s), scenarios alternated; pinning: $PINNING"
  echo "- upstream: \`vestibule whoami\` \`/_bench\` (the same for every scenario); nginx $(nginx -v 2>&1 | sed 's/.*\///'), Caddy $(caddy version | awk '{print $1}')"
  echo "- vestibule: release build, log level warn; idle RSS ${RSS_IDLE_KB} KiB; start-up to listening ${STARTUP_MS} ms"
  echo
  echo "| # | scenario | req/s median (min–max) | p50 ms | p99 ms | × nginx (2) | × direct (1) |"
  echo "|---|---|---|---|---|---|---|"
  for s in "${SCENARIOS[@]}"; do
    IFS='|' read -r id desc url kind <<<"$s"
    read -r med min max <<<"$(stats ${RPS[$id]})"
    p50=$(stats3 ${P50[$id]}); p99=$(stats3 ${P99[$id]})
    rn=$(quot "$med" "$nginx" 2)
    rd=$(quot "$med" "$direct" 2)
    echo "| $id | $desc | $med ($min–$max) | $p50 | $p99 | $rn | $rd |"
  done
  echo
  s4=$(median 4 || true); s5=$(median 5 || true); s7=$(median 7 || true); s8=$(median 8 || true)
  echo "Signed assertions (8 ÷ 4, medians; target ≥ 0.95): $(quot "$s8" "$s4" 3)"
  echo
  echo "OIDC login sessions at the gate (5 ÷ 4, medians; target ≥ 0.95): $(quot "$s5" "$s4" 3)"
  echo
  echo "OAuth access tokens at the gate (7 ÷ 4, medians; target ≥ 0.95): $(quot "$s7" "$s4" 3)"
  echo
  echo "The provider's endpoints (one measurement of ${DURATION}s each, after the rounds):"
  echo
  echo "| endpoint | req/s | p50 ms | p99 ms |"
  echo "|---|---|---|---|"
  for r in "${ENDPOINT_ROWS[@]}"; do echo "$r"; done
  echo
  s6=$(median 6 || true); s9=$(median 9 || true); s13=$(median 13 || true)
  echo "Targets (medians): 4 ÷ 2 = $(quot "$s4" "$nginx" 2), 6 ÷ 2 = $(quot "$s6" "$nginx" 2) (≥ 1.0); 9 ÷ 13 = $(quot "$s9" "$s13" 2) (≥ 0.9)"
  echo
  scale_table
} >"$TABLE"
echo
cat "$TABLE"
if [ "$FAILED" -ne 0 ]; then echo "bench: some scenarios failed" >&2; exit 1; fi
echo "bench: table written to $TABLE"
