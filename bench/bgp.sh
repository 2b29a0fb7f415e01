#!/usr/bin/env bash
# BGP speaker benchmark: N FlowSpec rules (default 10,000) announced by Rampart's speaker to
# BIRD 2, side by side with ExaBGP announcing the same rules to the same BIRD.
#
# Measures, on loopback, with BIRD's own table as the judge (`birdc show route table T count`,
# polled every ~10 ms):
#   rampart hot   - speaker already Established with an empty set; the decisions file is
#                   replaced and SIGHUP'd: time until BIRD holds all N rules
#   rampart cold  - speaker process started with the N decisions: time until BIRD holds N
#                   (process start, TCP, OPEN, the N UPDATEs)
#   withdraw      - decisions file emptied, SIGHUP: time until BIRD holds 0
#   expiry        - N decisions expiring 3 s after they were written: delay from the expiry
#                   moment until BIRD holds 0 (the speaker checks expiry every 100 ms)
#   exabgp config - ExaBGP 4.2 started with the N rules in its configuration
#   exabgp api    - ExaBGP started with none; an API process prints the N `announce flow route`
#                   commands when triggered (its usual way of injecting rules): time from the
#                   trigger until BIRD holds N
# and the resident memory of BIRD, the speaker and ExaBGP.
#
# Prints a Markdown table and writes it to bench/results/bgp-<date>.md.
#
# Usage: bench/bgp.sh [--rules 10000] [--no-exabgp] [--md5]
#        --md5: the Rampart-BIRD session TCP-MD5 signed (RFC 2385, `password` on both sides);
#        compare with a run without it on the same machine state
#        bench/bgp.sh --onset [--runs 40] [--fastnetmon-runs 3]: onset to route in BIRD, p50/p99,
#        with fastnetmon's ban on the same replay (bench/bgp-onset.sh)
# Every loop is bounded (60 s per wait). Traffic goes to 127.0.77.0/24 only.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ "${1:-}" == --onset ]]; then
  shift
  exec bench/bgp-onset.sh "$@"
fi
rules=10000
exabgp=1
md5=0
while (($#)); do
  case "$1" in
    --rules) rules="$2"; shift 2 ;;
    --no-exabgp) exabgp=0; shift ;;
    --md5) md5=1; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

for bin in bird birdc python3; do
  command -v "$bin" >/dev/null || { echo "$bin is required" >&2; exit 1; }
done
if ((exabgp)) && ! command -v exabgp >/dev/null; then
  echo "exabgp missing: run with --no-exabgp" >&2
  exit 1
fi

cargo build --release -q -p rampart-bgp --example speaker
speaker_bin=target/release/examples/speaker

work=$(mktemp -d /tmp/rampart-bgp-bench.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  sleep 0.3
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

bird_addr=127.0.77.2
rampart_addr=127.0.77.1
exa_addr=127.0.77.3
port=$(python3 -c "import socket; s=socket.socket(); s.bind(('$bird_addr', 0)); print(s.getsockname()[1])")

now() { date +%s.%N; }
cpu_secs() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.3f", ($14 + $15) / hz}' "/proc/$1/stat"; }
rss_kib() { ps -o rss= -p "$1" 2>/dev/null | tr -d ' ' || echo 0; }
count() {
  birdc -s "$work/bird.ctl" show route table "$1" count 2>/dev/null |
    awk '/routes for/ {print $1; found=1} END {if (!found) print 0}'
}
# wait_count TABLE N: polls until TABLE holds exactly N routes (60 s at most); prints the time.
wait_count() {
  local deadline=$(($(date +%s) + 60))
  while (($(date +%s) < deadline)); do
    if [[ "$(count "$1")" == "$2" ]]; then now; return 0; fi
    sleep 0.01
  done
  echo "timeout waiting for $2 routes in $1 (have $(count "$1"))" >&2
  return 1
}
elapsed() { python3 -c "print(f'{$2 - $1:.3f}')"; }

# Decisions: discard rules for 203.0.113.0/24 hosts x destination ports (data, never traffic).
gen_decisions() { # gen_decisions N [EXPIRES_UNIX_SECS]
  python3 - "$1" "${2:-}" <<'PY'
import json, sys
n, expires = int(sys.argv[1]), (float(sys.argv[2]) if sys.argv[2] else None)
out = []
for i in range(n):
    host, port = i % 256, 1000 + i // 256
    out.append({"id": i + 1, "scope": {"signature": {"src_prefixes": [], "dst_prefixes": [f"203.0.113.{host}/32"],
        "protocol": 17, "src_ports": [], "dst_ports": [{"first": port, "last": port}], "tcp_flags": None,
        "fragment": None, "packet_len": None, "sampled_packets": 1, "collateral": None}},
        "action": {"rate_limit_bytes": {"bytes_per_sec": 1000000}}, "origin": {"operator": {"name": "bench"}},
        "created": 1, "expires": expires, "reason": "bench"})
print(json.dumps(out))
PY
}

cat > "$work/bird.conf" <<CONF
router id 192.0.2.254;
protocol device {}
flow4 table flowr;
flow4 table flowx;
protocol bgp rampart {
  local $bird_addr port $port as 64513;
  neighbor $rampart_addr as 64512;
  multihop; passive on; hold time 30; error wait time 1, 5;
  $(if ((md5)); then echo 'password "rampart-bench-md5";'; fi)
  flow4 { table flowr; import all; export none; };
}
protocol bgp exabgp {
  local $bird_addr port $port as 64513;
  neighbor $exa_addr as 64514;
  multihop; passive on; hold time 30; error wait time 1, 5;
  flow4 { table flowx; import all; export none; };
}
CONF
bird -c "$work/bird.conf" -s "$work/bird.ctl" -P "$work/bird.pid" -f 2>"$work/bird.log" &
bird_pid=$!
pids+=("$bird_pid")
for _ in $(seq 100); do birdc -s "$work/bird.ctl" show status >/dev/null 2>&1 && break; sleep 0.05; done
bird_rss0=$(rss_kib "$bird_pid")

cat > "$work/speaker.toml" <<CONF
local_as = 64512
router_id = "192.0.2.1"
[[peers]]
name = "bird"
address = "$bird_addr"
port = $port
peer_as = 64513
local_address = "$rampart_addr"
families = ["ipv4_flowspec"]
hold_time = 30
rule_budget = $((rules + 1))
$(if ((md5)); then echo 'password = "rampart-bench-md5"'; fi)
CONF

# --- rampart hot: established, then N decisions at once ---
echo '[]' > "$work/decisions.json"
"$speaker_bin" "$work/speaker.toml" "$work/decisions.json" 2>"$work/speaker.log" &
speaker_pid=$!
pids+=("$speaker_pid")
for _ in $(seq 600); do birdc -s "$work/bird.ctl" show protocols rampart | grep -q Established && break; sleep 0.05; done
gen_decisions "$rules" > "$work/all.json"
cp "$work/all.json" "$work/decisions.json"
cpu0=$(cpu_secs "$speaker_pid")
t0=$(now); kill -HUP "$speaker_pid"
t1=$(wait_count flowr "$rules")
hot=$(elapsed "$t0" "$t1")
hot_cpu=$(elapsed "$cpu0" "$(cpu_secs "$speaker_pid")")
bird_rss1=$(rss_kib "$bird_pid")
speaker_rss=$(rss_kib "$speaker_pid")

# --- withdraw all ---
echo '[]' > "$work/decisions.json"
t0=$(now); kill -HUP "$speaker_pid"
t1=$(wait_count flowr 0)
withdraw=$(elapsed "$t0" "$t1")

# --- expiry ---
expires=$(python3 -c "import time; print(f'{time.time() + 3:.6f}')")
gen_decisions "$rules" "$expires" > "$work/decisions.json"
kill -HUP "$speaker_pid"
wait_count flowr "$rules" >/dev/null
t1=$(wait_count flowr 0)
expiry=$(elapsed "$expires" "$t1")

# --- rampart cold: a new process with the N decisions ---
kill -TERM "$speaker_pid"; wait "$speaker_pid" 2>/dev/null || true
wait_count flowr 0 >/dev/null
cp "$work/all.json" "$work/decisions.json"
t0=$(now)
"$speaker_bin" "$work/speaker.toml" "$work/decisions.json" 2>>"$work/speaker.log" &
speaker_pid=$!
pids+=("$speaker_pid")
t1=$(wait_count flowr "$rules")
cold=$(elapsed "$t0" "$t1")
kill -TERM "$speaker_pid"; wait "$speaker_pid" 2>/dev/null || true
t_stop=$(now)
t1=$(wait_count flowr 0)
shutdown=$(elapsed "$t_stop" "$t1")

exa_config="n/a"; exa_api="n/a"; exa_rss="n/a"
if ((exabgp)); then
  routes_py() { # the N rules in ExaBGP's syntax, as config blocks or API lines
    python3 - "$rules" "$1" <<'PY'
import sys
n, form = int(sys.argv[1]), sys.argv[2]
for i in range(n):
    host, port = i % 256, 1000 + i // 256
    match = f"destination 203.0.113.{host}/32; protocol udp; destination-port ={port};"
    if form == "config":
        print(f"    route r{i} {{ match {{ {match} }} then {{ rate-limit 1000000; }} }}")
    else:
        print(f"announce flow route {{ match {{ {match} }} then {{ rate-limit 1000000; }} }}")
PY
  }
  exa_env=(env exabgp_daemon_user=root exabgp_daemon_daemonize=false exabgp_log_destination=stderr
           exabgp_log_level=ERR exabgp_api_cli=false exabgp_tcp_bind= exabgp_tcp_port=179)
  write_exa_conf() { # write_exa_conf with-routes|api
    {
      if [[ "$1" == api ]]; then
        echo "process injector { run $work/injector.sh; encoder text; }"
      fi
      echo "neighbor $bird_addr {"
      echo "  router-id 192.0.2.3; local-address $exa_addr; local-as 64514; peer-as 64513;"
      echo "  connect $port; hold-time 30;"
      echo "  family { ipv4 flow; }"
      if [[ "$1" == api ]]; then
        echo "  api { processes [ injector ]; }"
      else
        echo "  flow {"; routes_py config; echo "  }"
      fi
      echo "}"
    } > "$work/exabgp.conf"
  }
  # At its best: the rules in the configuration.
  write_exa_conf with-routes
  t0=$(now)
  "${exa_env[@]}" exabgp "$work/exabgp.conf" >/dev/null 2>"$work/exabgp.log" &
  exa_pid=$!
  pids+=("$exa_pid")
  t1=$(wait_count flowx "$rules")
  exa_config=$(elapsed "$t0" "$t1")
  exa_rss=$(rss_kib "$exa_pid")
  kill -TERM "$exa_pid"; wait "$exa_pid" 2>/dev/null || true
  wait_count flowx 0 >/dev/null || true
  # Its usual way: commands through the API process.
  routes_py api > "$work/api.txt"
  cat > "$work/injector.sh" <<SH
#!/bin/sh
while [ ! -e "$work/trigger" ]; do sleep 0.01; done
cat "$work/api.txt"
while true; do sleep 1; done
SH
  chmod +x "$work/injector.sh"
  write_exa_conf api
  "${exa_env[@]}" exabgp "$work/exabgp.conf" >/dev/null 2>>"$work/exabgp.log" &
  exa_pid=$!
  pids+=("$exa_pid")
  for _ in $(seq 600); do birdc -s "$work/bird.ctl" show protocols exabgp | grep -q Established && break; sleep 0.05; done
  t0=$(now); touch "$work/trigger"
  t1=$(wait_count flowx "$rules")
  exa_api=$(elapsed "$t0" "$t1")
  exa_rss="$exa_rss / $(rss_kib "$exa_pid")"
  kill -TERM "$exa_pid"; wait "$exa_pid" 2>/dev/null || true
fi

rate() { python3 -c "print(f'{$rules / $1:,.0f}')"; }
mkdir -p bench/results
signed=""; suffix=""
if ((md5)); then signed=", TCP-MD5 signed session"; suffix="-md5"; fi
out="bench/results/bgp-$(date -u +%Y-%m-%dT%H%M%SZ)$suffix.md"
{
  echo "### BGP: $rules FlowSpec rules to BIRD $(bird --version 2>&1 | awk '{print $3}') on loopback ($(nproc) cores, shared, load average $(cut -d' ' -f1-3 /proc/loadavg)$signed)"
  echo
  echo "| what | seconds | rules/s |"
  echo "|---|---:|---:|"
  echo "| Rampart, session up, $rules decisions at once (SIGHUP) until BIRD holds all | $hot | $(rate "$hot") |"
  echo "| Rampart, process start with $rules decisions until BIRD holds all | $cold | $(rate "$cold") |"
  echo "| Rampart, withdraw all (SIGHUP with none) until BIRD holds 0 | $withdraw | $(rate "$withdraw") |"
  echo "| Rampart, clean shutdown (SIGTERM: withdrawals, then Cease, on which BIRD drops the peer's routes anyway) until BIRD holds 0 | $shutdown | |"
  echo "| Rampart, delay from expiry until BIRD holds 0 | $expiry | |"
  if ((exabgp)); then
    echo "| ExaBGP $(exabgp --version 2>&1 | awk '/ExaBGP/ {print $3}'), process start with the rules in its configuration until BIRD holds all | $exa_config | $(rate "$exa_config") |"
    echo "| ExaBGP, API process printing the $rules announce commands until BIRD holds all (its usual way) | $exa_api | $(rate "$exa_api") |"
  fi
  echo
  if ((exabgp)); then
    echo "Ratios in this run: Rampart with the session up is $(python3 -c "print(f'{$exa_api / $hot:.1f}')")x faster than ExaBGP through its API (its usual way); from process start, $(python3 -c "print(f'{$exa_config / $cold:.1f}')")x faster than ExaBGP from its configuration; against the faster of ExaBGP's two ways (its best here), $(python3 -c "print(f'{min($exa_api, $exa_config) / min($hot, $cold):.1f}')")x."
  fi
  echo "The speaker runs on one thread: $hot_cpu CPU-seconds for the $rules rules ($(python3 -c "print(f'{$rules / max($hot_cpu, 0.001):,.0f}')") rules per CPU-second, encoding and sending); the wall time above is mostly BIRD importing them."
  echo "Resident memory (KiB): BIRD $bird_rss0 empty, $bird_rss1 holding $rules rules; Rampart speaker $speaker_rss holding $rules; ExaBGP (config / API) $exa_rss."
} | tee "$out"
