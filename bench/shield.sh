#!/usr/bin/env bash
# HTTP shield benchmark: `rampart shield` against nginx and HAProxy from Debian, same machine,
# same run, same origin, all on loopback.
#
# The origin is an nginx of its own (`return 200 "ok"`, keep-alive) on core 1 with the load
# generators; each proxy runs alone on core 0 (taskset), so its requests per CPU-second are
# requests per core. For each proxy:
#   * HTTP/1.1 keep-alive, small responses, at full load (wrk -t1 -c50): requests/s, requests per
#     CPU-second of the proxy, p99;
#   * HTTP/1.1 at a fixed load (wrk, 50 connections each waiting 10 ms between requests, about
#     4,000 requests/s): p99;
#   * HTTP/2 cleartext (h2load -c10 -m10): requests/s and per CPU-second;
#   * under a slowloris of 5,000 connections (slowhttptest -H from 127.0.0.1): whether it still
#     serves, and a legitimate client's p50/p99 (200 curl requests from 127.0.1.1).
# Proxies: rampart at its defaults (rate limits off: wrk is one client address, which the
# default per-address limit of 100/s would answer with 429s), nginx and HAProxy at the Debian
# package defaults, and both tuned (upstream keep-alive, one worker pinned, logs off, HAProxy
# `timeout http-request`). Slowloris runs against the defaults only.
#
# Prints a Markdown table and writes it to bench/results/shield-<date>.md.
# Usage: bench/shield.sh [--seconds 10] [--slow-connections 5000] [--no-slowloris] [--rampart BIN]
#                        [--rounds N [--only-rounds]]
# (--rampart: measure that binary instead of building this tree's, e.g. to compare two builds;
# --rounds N: afterwards, N interleaved rounds of rampart and tuned nginx at full load, HTTP/1.1
# and h2c, 5 s each, with each round's ratio and the median: the proxies measured one after the
# other above drift apart on a shared machine, two measured in turn much less)
# Every load is bounded in time; everything listens on and sends to 127.0.0.0/8 only; every
# process started here is stopped by its PID at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=10
slow_connections=5000
slowloris=1
rampart=
rounds=0
only_rounds=0
while (($#)); do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --slow-connections) slow_connections="$2"; shift 2 ;;
    --no-slowloris) slowloris=0; shift ;;
    --rampart) rampart="$(realpath "$2")"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --only-rounds) only_rounds=1; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

for tool in nginx haproxy wrk h2load slowhttptest curl taskset; do
  command -v "$tool" >/dev/null || { echo "bench/shield.sh needs $tool" >&2; exit 1; }
done
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
if [ -z "$rampart" ]; then
  cargo build --release -q -p rampart
  rampart="$PWD/target/release/rampart"
fi

work=$(mktemp -d /tmp/rampart-shield-bench.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "nothing listens on $1" >&2; return 1; }

# CPU ticks (user + system) of a process and its children.
cpu_ticks() {
  local total=0 pid
  for pid in "$1" $(pgrep -P "$1" || true); do
    if [ -r "/proc/$pid/stat" ]; then
      total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
    fi
  done
  echo "$total"
}
hz=$(getconf CLK_TCK)

nginx_temp() {
  printf 'client_body_temp_path %s/%s-body; proxy_temp_path %s/%s-proxy; fastcgi_temp_path %s/%s-fcgi; uwsgi_temp_path %s/%s-uwsgi; scgi_temp_path %s/%s-scgi;\n' \
    "$work" "$1" "$work" "$1" "$work" "$1" "$work" "$1" "$work" "$1"
}

origin_port=$(free_port)
cat >"$work/origin.conf" <<EOF
worker_processes 1;
daemon off;
pid $work/origin.pid;
error_log $work/origin-error.log;
events { worker_connections 20000; }
http {
  $(nginx_temp origin)
  access_log off;
  keepalive_requests 10000000;
  server { listen 127.0.0.1:$origin_port; location / { return 200 "ok"; } }
}
EOF
taskset -c 1 nginx -e "$work/origin-error.log" -p "$work" -c "$work/origin.conf" &
pids+=($!)
wait_port "$origin_port"

# --- proxy configurations ---------------------------------------------------------------
start_rampart() {
  cat >"$work/rampart.toml" <<EOF
[[listener]]
address = "127.0.0.1:$1"
h2c = true
[upstream.origin]
servers = ["http://127.0.0.1:$origin_port"]
[[route]]
upstream = "origin"
[rate_limit]
disabled = true
EOF
  taskset -c 0 "$rampart" shield --config "$work/rampart.toml" 2>"$work/rampart.log" &
  proxy_pid=$!
}

# Debian's nginx.conf, reduced to what proxying uses: worker_processes auto, 768 connections a
# worker, sendfile, keepalive_timeout 65, an access log; proxy_pass as it comes (HTTP/1.0 to the
# upstream, a new connection per request). nginx 1.22 speaks h2c only on a listener marked http2
# (and then only h2), so h2c gets a second port.
start_nginx_default() {
  cat >"$work/nginx-default.conf" <<EOF
worker_processes auto;
daemon off;
pid $work/nginx-default.pid;
error_log $work/nginx-default-error.log;
events { worker_connections 768; }
http {
  $(nginx_temp nginx-default)
  sendfile on;
  tcp_nopush on;
  keepalive_timeout 65;
  access_log $work/nginx-default-access.log;
  server { listen 127.0.0.1:$1; listen 127.0.0.1:$2 http2; location / { proxy_pass http://127.0.0.1:$origin_port; } }
}
EOF
  taskset -c 0 nginx -e "$work/nginx-default-error.log" -p "$work" -c "$work/nginx-default.conf" &
  proxy_pid=$!
}

# Tuned: one worker (it has one core), many connections, upstream keep-alive over HTTP/1.1,
# no access log.
start_nginx_tuned() {
  cat >"$work/nginx-tuned.conf" <<EOF
worker_processes 1;
daemon off;
pid $work/nginx-tuned.pid;
error_log $work/nginx-tuned-error.log;
events { worker_connections 20000; }
http {
  $(nginx_temp nginx-tuned)
  access_log off;
  keepalive_requests 10000000;
  upstream origin { server 127.0.0.1:$origin_port; keepalive 128; }
  server {
    listen 127.0.0.1:$1;
    listen 127.0.0.1:$2 http2;
    location / { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
EOF
  taskset -c 0 nginx -e "$work/nginx-tuned-error.log" -p "$work" -c "$work/nginx-tuned.conf" &
  proxy_pid=$!
}

# Debian's haproxy.cfg defaults section (mode http, httplog, 5 s connect, 50 s client and server
# timeouts; no `timeout http-request`), logging to nowhere; h2c through `proto h2` on a second
# bind.
start_haproxy_default() {
  cat >"$work/haproxy-default.cfg" <<EOF
global
  pidfile $work/haproxy-default.pid
defaults
  mode http
  option httplog
  option dontlognull
  timeout connect 5000
  timeout client 50000
  timeout server 50000
frontend web
  bind 127.0.0.1:$1
  bind 127.0.0.1:$2 proto h2
  default_backend origin
backend origin
  server origin 127.0.0.1:$origin_port
EOF
  taskset -c 0 haproxy -db -f "$work/haproxy-default.cfg" &
  proxy_pid=$!
}

start_haproxy_tuned() {
  cat >"$work/haproxy-tuned.cfg" <<EOF
global
  pidfile $work/haproxy-tuned.pid
  nbthread 1
  maxconn 9000
defaults
  mode http
  timeout connect 5s
  timeout client 50s
  timeout server 50s
  timeout http-request 10s
  timeout http-keep-alive 60s
  http-reuse always
  maxconn 9000
frontend web
  bind 127.0.0.1:$1
  bind 127.0.0.1:$2 proto h2
  default_backend origin
backend origin
  server origin 127.0.0.1:$origin_port maxconn 9000
EOF
  taskset -c 0 haproxy -db -f "$work/haproxy-tuned.cfg" &
  proxy_pid=$!
}

cat >"$work/paced.lua" <<'EOF'
function delay() return 10 end
EOF

# wrk output: requests/s and the 99th percentile in ms.
wrk_rate() { awk '/Requests\/sec/ {print $2}' "$1"; }
wrk_p99() {
  awk '$1 == "99%" { v = $2; if (v ~ /us$/) { sub(/us$/, "", v); v = v / 1000 } else if (v ~ /ms$/) { sub(/ms$/, "", v) } else if (v ~ /s$/) { sub(/s$/, "", v); v = v * 1000 } printf "%.2f", v }' "$1"
}
wrk_errors() { awk '/Non-2xx|Socket errors/ {printf "%s ", $0}' "$1"; }

legit_latency() {
  # 200 requests from 127.0.1.1, a fresh connection each: "ok-count p50 p99" in ms.
  local port=$1 out="$work/legit.txt"
  : >"$out"
  for _ in $(seq 200); do
    curl -s -o /dev/null --interface 127.0.1.1 --max-time 5 -w '%{http_code} %{time_total}\n' "http://127.0.0.1:$port/" >>"$out" || echo "000 5" >>"$out"
  done
  local ok
  ok=$(awk '$1 == 200' "$out" | wc -l)
  awk '{print $2 * 1000}' "$out" | sort -n | awk -v ok="$ok" '{a[NR] = $1} END {printf "%d/200 %.1f %.1f", ok, a[int(NR * 0.5)], a[int(NR * 0.99)]}'
}

rows=()
slow_rows=()
measure() {
  local name=$1 starter=$2 http1_port h2_port
  http1_port=$(free_port)
  h2_port=$http1_port
  if [[ $name != rampart* ]]; then h2_port=$(free_port); fi
  "$starter" "$http1_port" "$h2_port"
  pids+=("$proxy_pid")
  wait_port "$http1_port"
  sleep 0.5
  # Warm up (upstream connections, caches).
  taskset -c 1 wrk -t1 -c50 -d2s "http://127.0.0.1:$http1_port/" >/dev/null

  local before after
  before=$(cpu_ticks "$proxy_pid")
  taskset -c 1 wrk -t1 -c50 -d"${seconds}s" --latency "http://127.0.0.1:$http1_port/" >"$work/$name-wrk.txt"
  after=$(cpu_ticks "$proxy_pid")
  local rate cpu per_core p99 errors
  rate=$(wrk_rate "$work/$name-wrk.txt")
  cpu=$(awk -v t=$((after - before)) -v hz="$hz" 'BEGIN {printf "%.2f", t / hz}')
  per_core=$(awk -v r="$rate" -v s="$seconds" -v c="$cpu" 'BEGIN {if (c > 0) printf "%.0f", r * s / c; else print "?"}')
  p99=$(wrk_p99 "$work/$name-wrk.txt")
  errors=$(wrk_errors "$work/$name-wrk.txt")

  taskset -c 1 wrk -t1 -c50 -d"${seconds}s" --latency -s "$work/paced.lua" "http://127.0.0.1:$http1_port/" >"$work/$name-paced.txt"
  local paced_rate paced_p99
  paced_rate=$(wrk_rate "$work/$name-paced.txt")
  paced_p99=$(wrk_p99 "$work/$name-paced.txt")

  before=$(cpu_ticks "$proxy_pid")
  taskset -c 1 h2load -c10 -m10 -D "$seconds" "http://127.0.0.1:$h2_port/" >"$work/$name-h2load.txt" 2>&1 || true
  after=$(cpu_ticks "$proxy_pid")
  local h2_rate h2_cpu h2_per_core h2_ok
  h2_rate=$(awk '/^finished in/ {gsub(",", "", $4); print $4}' "$work/$name-h2load.txt")
  h2_ok=$(awk '/^requests:/ {print $8}' "$work/$name-h2load.txt")
  h2_cpu=$(awk -v t=$((after - before)) -v hz="$hz" 'BEGIN {printf "%.2f", t / hz}')
  h2_per_core=$(awk -v r="${h2_rate:-0}" -v s="$seconds" -v c="$h2_cpu" 'BEGIN {if (c > 0) printf "%.0f", r * s / c; else print "?"}')

  rows+=("| $name | ${rate} | ${per_core} | ${p99} | ${paced_rate} | ${paced_p99} | ${h2_rate:-failed} | ${h2_per_core} | ${h2_ok:-0} | ${errors:-none} |")
  echo "${rows[-1]}" >&2

  if ((slowloris)) && [[ $name == *default* || $name == rampart* ]]; then
    taskset -c 1 slowhttptest -H -c "$slow_connections" -r 1000 -i 10 -l $((seconds + 20)) -u "http://127.0.0.1:$http1_port/" >/dev/null 2>&1 &
    local attack=$!
    pids+=("$attack")
    sleep 10
    local open legit
    open=$(ss -Htn state established "( sport = :$http1_port )" | wc -l)
    legit=$(legit_latency "$http1_port")
    kill "$attack" 2>/dev/null || true
    wait "$attack" 2>/dev/null || true
    slow_rows+=("| $name | $open | $legit |")
    echo "${slow_rows[-1]}" >&2
    sleep 2
  fi
  kill "$proxy_pid" 2>/dev/null || true
  wait "$proxy_pid" 2>/dev/null || true
}

if ((!only_rounds)); then
  measure rampart start_rampart
  measure nginx-default start_nginx_default
  measure nginx-tuned start_nginx_tuned
  measure haproxy-default start_haproxy_default
  measure haproxy-tuned start_haproxy_tuned
fi

# Interleaved rounds: rampart and tuned nginx in turn, requests per CPU-second at full load.
full_load_per_cpu() {
  local name=$1 starter=$2 port h2_port before after
  port=$(free_port)
  h2_port=$port
  if [[ $name != rampart* ]]; then h2_port=$(free_port); fi
  "$starter" "$port" "$h2_port"
  pids+=("$proxy_pid")
  wait_port "$port"
  taskset -c 1 wrk -t1 -c50 -d1s "http://127.0.0.1:$port/" >/dev/null
  before=$(cpu_ticks "$proxy_pid")
  taskset -c 1 wrk -t1 -c50 -d5s "http://127.0.0.1:$port/" >"$work/round.txt"
  after=$(cpu_ticks "$proxy_pid")
  round_h1=$(awk -v r="$(wrk_rate "$work/round.txt")" -v t=$((after - before)) -v hz="$hz" 'BEGIN {if (t > 0) printf "%.0f", r * 5 / (t / hz); else print 0}')
  before=$(cpu_ticks "$proxy_pid")
  taskset -c 1 h2load -c10 -m10 -D 5 "http://127.0.0.1:$h2_port/" >"$work/round-h2.txt" 2>&1 || true
  after=$(cpu_ticks "$proxy_pid")
  round_h2=$(awk -v t=$((after - before)) -v hz="$hz" '/^finished in/ {gsub(",", "", $4); r = $4} END {if (t > 0) printf "%.0f", r * 5 / (t / hz); else print 0}' "$work/round-h2.txt")
  kill "$proxy_pid" 2>/dev/null || true
  wait "$proxy_pid" 2>/dev/null || true
}
round_rows=()
if ((rounds > 0)); then
  for r in $(seq "$rounds"); do
    full_load_per_cpu rampart start_rampart
    ours_h1=$round_h1 ours_h2=$round_h2
    full_load_per_cpu nginx-tuned start_nginx_tuned
    theirs_h1=$round_h1 theirs_h2=$round_h2
    round_rows+=("| $r | $ours_h1 | $theirs_h1 | $(awk -v a="$ours_h1" -v b="$theirs_h1" 'BEGIN {printf "%.2f", a / b}') | $ours_h2 | $theirs_h2 | $(awk -v a="$ours_h2" -v b="$theirs_h2" 'BEGIN {printf "%.2f", a / b}') |")
    echo "${round_rows[-1]}" >&2
  done
fi
median_col() { printf '%s\n' "${round_rows[@]}" | awk -F'|' -v c="$1" '{print $(c + 1) + 0}' | sort -n | awk '{a[NR] = $1} END {if (NR) print a[int((NR + 1) / 2)]}'; }

mkdir -p bench/results
out="bench/results/shield-$(date -u +%Y%m%d-%H%M).md"
{
  echo "# Shield benchmark, $(date -u +%Y-%m-%dT%H:%MZ), ${seconds}s runs, proxy on core 0, clients and origin on core 1"
  if ((${#rows[@]})); then
    echo
    echo "| proxy | HTTP/1.1 req/s | req per CPU-s | p99 ms (full load) | paced req/s | p99 ms (paced) | h2c req/s | h2c req per CPU-s | h2c ok | wrk errors |"
    echo "|---|---|---|---|---|---|---|---|---|---|"
    printf '%s\n' "${rows[@]}"
  fi
  if ((${#slow_rows[@]})); then
    echo
    echo "Under a slowloris of $slow_connections connections (slowhttptest -H from 127.0.0.1), a legitimate client from 127.0.1.1:"
    echo
    echo "| proxy | attack connections established after 10 s | legitimate answers (ok/200, p50 ms, p99 ms) |"
    echo "|---|---|---|"
    printf '%s\n' "${slow_rows[@]}"
  fi
  if ((${#round_rows[@]})); then
    echo
    echo "Interleaved rounds, requests per CPU-second at full load (wrk -c50 / h2load -c10 -m10, 5 s each), rampart then tuned nginx:"
    echo
    echo "| round | rampart HTTP/1.1 | nginx tuned HTTP/1.1 | ratio | rampart h2c | nginx tuned h2c | ratio |"
    echo "|---|---|---|---|---|---|---|"
    printf '%s\n' "${round_rows[@]}"
    echo "| median | $(median_col 2) | $(median_col 3) | $(median_col 4) | $(median_col 5) | $(median_col 6) | $(median_col 7) |"
  fi
} | tee "$out"
