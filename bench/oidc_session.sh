#!/usr/bin/env bash
# Scenario 5's setup (in-path with a session cookie), sourced by
# bench/run.sh: a real session of vestibule's OIDC login ([source.oidc]).
#
# Two more vestibule processes, as tests/it/oidc_login.rs runs them:
#   - the upstream provider (port P_OIDC_UP): [oidc_provider], signing
#     people in from trusted headers (the authelia user "bench-0");
#   - the gateway measured (port P_OIDC_GW): [source.oidc] against it, with
#     the same app route as scenario 4.
# One login is driven with curl (redirects followed, a cookie jar): the
# gateway's /.vestibule/oidc/login, the provider's authorize (implicit
# consent), the gateway's callback (code exchange, ID token), then the app.
# wrk then sends the session cookie to the app route.
#
# Needs from the caller: BIN, WORK, P_UP, the PIN_SERVER and PIDS arrays,
# wait_port. Sets OIDC_SESSION (the session cookie's value).
#
# Alone, to check the login flow against any binary (no wrk, no timing):
#   bench/oidc_session.sh [path/to/vestibule]

P_OIDC_UP=19104
P_OIDC_GW=19105

oidc_session_setup() {
  local up="http://127.0.0.1:$P_OIDC_UP" gw="http://127.0.0.1:$P_OIDC_GW"
  local secret=bench-oidc-secret
  mkdir -p "$WORK/oidc-up" "$WORK/oidc-gw"
  cat >"$WORK/oidc-up/vestibule.toml" <<EOF
[server]
listen = ["127.0.0.1:$P_OIDC_UP"]
admin_listen = ""
[log]
level = "warn"
[source.headers]
dialect = "authelia"
trusted_proxies = ["127.0.0.1"]
provisioning = "auto"
[database]
data_dir = "$WORK/oidc-up/data"
[accounts]
[oidc_provider]
issuer = "$up"
[[oidc_provider.client]]
client_id = "bench-gate"
kind = "confidential"
secret_sha256 = "$(printf '%s' "$secret" | sha256sum | cut -d' ' -f1)"
redirect_uris = ["$gw/.vestibule/oidc/callback"]
consent = "implicit"
[[route]]
name = "app"
upstream = "http://127.0.0.1:$P_UP"
EOF
  cat >"$WORK/oidc-gw/vestibule.toml" <<EOF
[server]
listen = ["127.0.0.1:$P_OIDC_GW"]
admin_listen = ""
[log]
level = "warn"
[source.oidc]
preset = "generic"
issuer = "$up"
client_id = "bench-gate"
client_secret_env = "BENCH_OIDC_SECRET"
redirect_url = "$gw/.vestibule/oidc/callback"
provisioning = "auto"
[database]
data_dir = "$WORK/oidc-gw/data"
[accounts]
cache_ttl = "60s"
[[route]]
name = "bench"
upstream = "http://127.0.0.1:$P_UP"
EOF
  "${PIN_SERVER[@]}" "$BIN" serve --config "$WORK/oidc-up/vestibule.toml" \
    >"$WORK/oidc-up/out" 2>"$WORK/oidc-up/err" &
  PIDS+=($!)
  BENCH_OIDC_SECRET=$secret "${PIN_SERVER[@]}" "$BIN" serve --config "$WORK/oidc-gw/vestibule.toml" \
    >"$WORK/oidc-gw/out" 2>"$WORK/oidc-gw/err" &
  PIDS+=($!)
  wait_port $P_OIDC_UP
  wait_port $P_OIDC_GW
  # The login, as a browser does it. The identity headers are for the
  # provider (its front vouches for bench-0); the gateway's [source.oidc]
  # reads no headers. Every hop must answer: -f fails on a 4xx/5xx.
  local jar="$WORK/oidc-gw/cookies" last
  last=$(curl -fsS -L --max-redirs 10 -c "$jar" -b "$jar" -o /dev/null -w '%{http_code} %{url_effective}' \
    -H "Accept: text/html" -H "Remote-User: bench-0" -H "Remote-Groups: users" \
    -H "Remote-Email: bench-0@example.com" -H "Remote-Name: Bench User 0" \
    "$gw/.vestibule/oidc/login?return_to=$(printf '%s' "$gw/_bench" | sed 's/:/%3A/g; s/\//%2F/g')") || {
    echo "bench: scenario 5: the OIDC login failed" >&2
    tail -n 5 "$WORK/oidc-up/err" "$WORK/oidc-gw/err" >&2
    return 1
  }
  # The jar's columns: domain, subdomains, path, secure, expiry, name, value.
  OIDC_SESSION=$(awk -F'\t' '$6 == "vestibule" { print $7 }' "$jar")
  if [ "$last" != "200 $gw/_bench" ] || [ -z "$OIDC_SESSION" ]; then
    echo "bench: scenario 5: the login ended at '$last' without a session cookie" >&2
    return 1
  fi
  # The session alone (no identity headers) passes the app route: a 200,
  # not a redirect to the login.
  local code
  code=$(curl -sS -o /dev/null -w '%{http_code}' -H "Cookie: vestibule=$OIDC_SESSION" "$gw/_bench")
  if [ "$code" != 200 ]; then
    echo "bench: scenario 5: the session cookie got $code at the app route" >&2
    return 1
  fi
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  cd "$(dirname "$0")/.."
  BIN=${1:-$PWD/target/debug/vestibule}
  WORK=$(mktemp -d)
  PIDS=()
  PIN_SERVER=()
  P_UP=19100
  BENCH_TAG=oidc_session
  # shellcheck source=bench/lib.sh
  . bench/lib.sh
  trap bench_cleanup EXIT
  "$BIN" whoami --listen 127.0.0.1:$P_UP >"$WORK/whoami.log" 2>&1 &
  PIDS+=($!)
  wait_port $P_UP
  oidc_session_setup
  echo "bench: scenario 5's login works: a session cookie of ${#OIDC_SESSION} characters passes the app route"
fi
