#!/usr/bin/env bash
# What the bench scripts share, sourced by bench/run.sh,
# bench/cpu_per_request.sh and bench/oidc_session.sh (when run alone).
#
# Needs from the caller: BENCH_TAG (the prefix of error messages), WORK
# (a scratch directory, removed on exit) and the PIDS array (processes to
# stop on exit). nginx, when started, writes its pid to
# $WORK/nginx/nginx.pid.

# Waits up to 10 s for something to accept connections on 127.0.0.1:$1;
# exits the script when nothing does.
wait_port() {
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "${BENCH_TAG:-bench}: nothing listens on $1" >&2
  exit 1
}

# Stops everything the script started and removes WORK. Installed with
# `trap bench_cleanup EXIT`.
bench_cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  kill "$(cat "$WORK/nginx/nginx.pid" 2>/dev/null)" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}

# The start of an nginx configuration for the benches: one worker (pinned
# by the caller with taskset), no access log, and the app upstream on
# 127.0.0.1:$1 with `keepalive 128` (docs/integrations/nginx.md explains why a
# busy gateway needs at least 64). The caller appends its own upstreams
# and servers, then closes the `http` block.
nginx_conf_head() {
  cat <<CONF
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  upstream app { server 127.0.0.1:$1; keepalive 128; }
CONF
}

# nginx `proxy_pass` to the app upstream with keep-alive (scenario 2's
# location, and the proxying step of the auth_request scenarios).
NGINX_PROXY_TO_APP='proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection "";'
