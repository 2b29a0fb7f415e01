#!/usr/bin/env bash
# HTTP flood benchmark (issue 12 §6): the same four floods, with legitimate browsers browsing
# meanwhile, against nginx (limit_req/limit_conn), HAProxy (stick tables) and `rampart shield`,
# each at the configuration its documentation recommends and at its best, plus the bare origin.
#
# The origin, the browsers and the flood are one process of the flood harness
# (crates/floodharness, example `flood_bench`) on core 1; each proxy runs alone on core 0 with a
# temporary configuration on loopback ports, started and stopped here by its PID. For every
# proxy × flood the proxy is fresh: 10 s of browsing (40 browsers, each its own /24 in
# 127.10.0.0/16, Firefox and Chrome header sets, cookies, think time 0.5–2.5 s, assets, a login
# one page in 20), then the flood at a fixed rate (default 800 requests/s for 20 s) while they
# go on, then 2 s more. The floods:
#   get_flood      GET /?<random>=<random>, python-requests' headers, 16 sources in 127.66.0.0/24
#   distributed    GET / and /article/N, 10 real browser User-Agents, one header order and set,
#                  2,048 sources in 512 /24s of 127.128.0.0/9
#   login_flood    POST /login with random credentials, 64 sources in 127.67.0.0/24
#   cache_busting  GET /search?q=<random>&_=<random> from 128 connections (32 sources), the origin
#                  slow: 50 ms a search plus 2 ms per request in flight (limit 64 in flight)
# Measured per run: legitimate requests during the flood that succeeded (the origin's answer,
# challenges followed), those challenged or refused (403/429), flood requests that reached the
# origin and the share refused, time from flood start to mitigation (first second from which
# ≥ 90 % of flood requests are refused, challenged or dropped every second until its end), and
# the origin's maximum requests in flight.
#
# Usage: bench/shield-flood.sh [--seconds 20] [--rate 800] [--warmup 10] [--clients 40]
#                              [--only NAME[,NAME...]] [--floods FLOOD[,FLOOD...]]
# Writes bench/results/shield-flood-<date>.txt (table and per-second series) and .jsonl.
# Everything listens on and sends to 127.0.0.0/8 only; every load is bounded in time and count.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=20
rate=800
warmup=10
clients=40
only=""
floods="get_flood,distributed,login_flood,cache_busting"
while (($#)); do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --rate) rate="$2"; shift 2 ;;
    --warmup) warmup="$2"; shift 2 ;;
    --clients) clients="$2"; shift 2 ;;
    --only) only="$2"; shift 2 ;;
    --floods) floods="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

for tool in nginx haproxy taskset python3; do
  command -v "$tool" >/dev/null || { echo "bench/shield-flood.sh needs $tool" >&2; exit 1; }
done
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
cargo build --release -q -p rampart
cargo build --release -q -p rampart-floodharness --example flood_bench
rampart="$PWD/target/release/rampart"
harness="$PWD/target/release/examples/flood_bench"

work=$(mktemp -d /tmp/rampart-shield-flood.XXXXXX)
proxy_pid=""
stop_proxy() {
  if [ -n "$proxy_pid" ]; then
    kill "$proxy_pid" 2>/dev/null || true
    wait "$proxy_pid" 2>/dev/null || true
    proxy_pid=""
  fi
}
cleanup() { stop_proxy; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "nothing listens on $1" >&2; return 1; }

nginx_temp() {
  printf 'client_body_temp_path %s/%s-body; proxy_temp_path %s/%s-proxy; fastcgi_temp_path %s/%s-fcgi; uwsgi_temp_path %s/%s-uwsgi; scgi_temp_path %s/%s-scgi;\n' \
    "$work" "$1" "$work" "$1" "$work" "$1" "$work" "$1" "$work" "$1"
}

# --- the proxies: each starter gets (listen port, origin port) and sets proxy_pid -------------

# Debian's nginx.conf reduced to proxying (worker_processes auto, 768 connections a worker,
# proxy_pass as it comes), plus rate limiting as nginx documents it: a zone per
# $binary_remote_addr at 10 r/s with `burst=20 nodelay` (the example of nginx's "Rate Limiting
# with NGINX"), and `limit_conn` per address (10 connections). Refusals keep nginx's default
# status, 503.
start_nginx_default() {
  cat >"$work/nginx-default.conf" <<EOF
worker_processes auto;
daemon off;
pid $work/nginx-default.pid;
error_log $work/nginx-default-error.log;
events { worker_connections 768; }
http {
  $(nginx_temp nginx-default)
  access_log off;
  keepalive_timeout 65;
  limit_req_zone \$binary_remote_addr zone=perip:10m rate=10r/s;
  limit_conn_zone \$binary_remote_addr zone=addr:10m;
  server {
    listen 127.0.0.1:$1;
    location / {
      limit_req zone=perip burst=20 nodelay;
      limit_conn addr 10;
      proxy_pass http://127.0.0.1:$2;
    }
  }
}
EOF
  taskset -c 0 nginx -e "$work/nginx-default-error.log" -p "$work" -c "$work/nginx-default.conf" &
  proxy_pid=$!
}

# nginx at its best, written before knowing the attack: the per-address limit with a larger
# burst (a page and its assets never wait), a per-/24 limit (a map of the address to its /24)
# against floods spread over a network, strict per-address limits on the routes an attacker
# would pick (/login 1 r/s, /search 2 r/s), 429 instead of 503, and the origin protected by
# `max_conns=64` with upstream keep-alive. What it cannot do: tell a bot from a browser at the
# same rate, or add a rule by itself.
start_nginx_best() {
  cat >"$work/nginx-best.conf" <<EOF
worker_processes 1;
daemon off;
pid $work/nginx-best.pid;
error_log $work/nginx-best-error.log;
events { worker_connections 20000; }
http {
  $(nginx_temp nginx-best)
  access_log off;
  keepalive_requests 100000;
  map \$remote_addr \$net24 { "~^(?<net>\d+\.\d+\.\d+)\." \$net; default \$remote_addr; }
  limit_req_zone \$binary_remote_addr zone=perip:10m rate=10r/s;
  limit_req_zone \$net24 zone=pernet:10m rate=50r/s;
  limit_req_zone \$binary_remote_addr zone=login:10m rate=1r/s;
  limit_req_zone \$binary_remote_addr zone=search:10m rate=2r/s;
  limit_conn_zone \$binary_remote_addr zone=addr:10m;
  limit_req_status 429;
  limit_conn_status 429;
  upstream site { server 127.0.0.1:$2 max_conns=64; keepalive 64; }
  server {
    listen 127.0.0.1:$1;
    limit_req zone=perip burst=40 nodelay;
    limit_req zone=pernet burst=200 nodelay;
    limit_conn addr 20;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    location / { proxy_pass http://site; }
    location /login { limit_req zone=perip burst=40 nodelay; limit_req zone=pernet burst=200 nodelay; limit_req zone=login burst=5 nodelay; proxy_pass http://site; }
    location /search { limit_req zone=perip burst=40 nodelay; limit_req zone=pernet burst=200 nodelay; limit_req zone=search burst=10 nodelay; proxy_pass http://site; }
  }
}
EOF
  taskset -c 0 nginx -e "$work/nginx-best-error.log" -p "$work" -c "$work/nginx-best.conf" &
  proxy_pid=$!
}

# Debian's haproxy.cfg defaults (mode http, 5 s connect, 50 s client and server timeouts) plus
# the rate limit HAProxy documents: a stick table of sources storing http_req_rate(10s),
# `http-request track-sc0 src`, and 429 above 20 requests in 10 s.
start_haproxy_default() {
  cat >"$work/haproxy-default.cfg" <<EOF
global
  pidfile $work/haproxy-default.pid
defaults
  mode http
  option dontlognull
  timeout connect 5000
  timeout client 50000
  timeout server 50000
frontend web
  bind 127.0.0.1:$1
  stick-table type ip size 100k expire 30s store http_req_rate(10s)
  http-request track-sc0 src
  http-request deny deny_status 429 if { sc_http_req_rate(0) gt 20 }
  default_backend site
backend site
  server origin 127.0.0.1:$2
EOF
  taskset -c 0 haproxy -db -f "$work/haproxy-default.cfg" &
  proxy_pid=$!
}

# HAProxy at its best, same rates as nginx's best: per source 100 requests in 10 s, per /24
# (`src,ipmask(24)`) 500, per source and route on /login and /search (`base32+src`) 10 and 20;
# the origin protected by `maxconn 64` on the server (HAProxy queues the rest, 5 s at most),
# upstream connection reuse, `timeout http-request`.
start_haproxy_tuned() {
  cat >"$work/haproxy-tuned.cfg" <<EOF
global
  pidfile $work/haproxy-tuned.pid
  nbthread 1
  maxconn 8000
defaults
  mode http
  timeout connect 5s
  timeout client 50s
  timeout server 50s
  timeout http-request 10s
  timeout http-keep-alive 60s
  timeout queue 5s
  http-reuse always
  maxconn 8000
backend per_net
  stick-table type ip size 100k expire 30s store http_req_rate(10s)
backend per_route
  stick-table type binary len 20 size 100k expire 30s store http_req_rate(10s)
frontend web
  bind 127.0.0.1:$1
  stick-table type ip size 100k expire 30s store http_req_rate(10s)
  acl expensive path_beg /login /search
  http-request track-sc0 src
  http-request track-sc1 src,ipmask(24) table per_net
  http-request track-sc2 base32+src table per_route if expensive
  http-request deny deny_status 429 if { sc_http_req_rate(0) gt 100 }
  http-request deny deny_status 429 if { sc_http_req_rate(1) gt 500 }
  http-request deny deny_status 429 if expensive { path_beg /login } { sc_http_req_rate(2) gt 10 }
  http-request deny deny_status 429 if expensive { path_beg /search } { sc_http_req_rate(2) gt 20 }
  default_backend site
backend site
  server origin 127.0.0.1:$2 maxconn 64
EOF
  taskset -c 0 haproxy -db -f "$work/haproxy-tuned.cfg" &
  proxy_pid=$!
}

# `rampart shield --config` with bench/shield-flood.toml (nothing written for the floods) or
# bench/shield-flood-tuned.toml (hand-written limits at the rates of nginx's best).
start_rampart_with() {
  sed -e "s/@LISTEN@/127.0.0.1:$2/" -e "s/@ORIGIN@/127.0.0.1:$3/" "bench/$1" >"$work/$1"
  taskset -c 0 "$rampart" shield --config "$work/$1" 2>>"$work/rampart.log" &
  proxy_pid=$!
}
start_rampart() { start_rampart_with shield-flood.toml "$1" "$2"; }
start_rampart_tuned() { start_rampart_with shield-flood-tuned.toml "$1" "$2"; }
# bench/shield-flood-auto.toml: the automatic flood defense with its warm-up shortened to the
# benchmark's browsing (nothing written for the floods).
start_rampart_auto() { start_rampart_with shield-flood-auto.toml "$1" "$2"; }

stamp=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p bench/results
out="bench/results/shield-flood-$stamp.txt"
jsonl="bench/results/shield-flood-$stamp.jsonl"
series="$work/series.txt"
rows=()

# name starter ("" for the bare origin)
run() {
  local name=$1 starter=$2 flood
  if [ -n "$only" ] && [[ ",$only," != *",$name,"* ]]; then return 0; fi
  for flood in ${floods//,/ }; do
    local origin_port listen_port target_args=()
    origin_port=$(free_port)
    if [ -n "$starter" ]; then
      listen_port=$(free_port)
      "$starter" "$listen_port" "$origin_port"
      wait_port "$listen_port"
      target_args=(--target "127.0.0.1:$listen_port")
    fi
    echo "== $name, $flood" >&2
    taskset -c 1 "$harness" --origin-port "$origin_port" "${target_args[@]}" --name "$name" --flood "$flood" \
      --rate "$rate" --seconds "$seconds" --warmup "$warmup" --clients "$clients" --json "$jsonl" >"$work/run.txt" || {
      echo "flood_bench failed for $name $flood" >&2; cat "$work/run.txt" >&2; stop_proxy; continue; }
    grep -v '^|' "$work/run.txt" | tee -a "$series" >&2
    rows+=("$(grep '^| '"$name"' |' "$work/run.txt" || echo "| $name | $flood | no report |")")
    stop_proxy
    sleep 1
  done
}

run origin ""
run nginx-default start_nginx_default
run nginx-best start_nginx_best
run haproxy-default start_haproxy_default
run haproxy-tuned start_haproxy_tuned
run rampart start_rampart
run rampart-tuned start_rampart_tuned
run rampart-auto start_rampart_auto

{
  echo "# Shield flood benchmark, $(date -u +%Y-%m-%dT%H:%MZ): $rate flood requests/s for ${seconds}s after ${warmup}s of browsing, $clients browsers; proxy on core 0, harness and origin on core 1"
  echo "# nginx $(nginx -v 2>&1 | sed 's/.*\///'), HAProxy $(haproxy -v | head -1 | awk '{print $3}'), rampart $(git rev-parse --short HEAD)"
  echo
  echo "| target | flood | legit ok % | legit challenged/blocked % | legit p99 ms | flood sent | flood reached origin | flood mitigated % | time to mitigation | origin max in flight (limit) |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|---|---:|"
  printf '%s\n' "${rows[@]}"
  echo
  echo "Per run, per second of the flood: sent / reached the origin / challenged / 403 / 429 / other refusal / dropped / timed out | all origin answers"
  echo
  cat "$series"
} >"$out"
cat "$out"
echo "written: $out, $jsonl" >&2
