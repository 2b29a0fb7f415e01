#!/usr/bin/env bash
# Live UDP collector benchmark: a loopback sender -> collector -> per-destination counters.
#
# For each protocol (NetFlow v9, sFlow v5) and each offered rate, sends a deterministic stream
# (crates/rampart/examples/flow_sender.rs) to `rampart collect` pinned to core 0 (the sender on
# core 1), then the same stream to Debian's fastnetmon (also pinned to core 0), and reports:
# offered and achieved send rate, records received, loss against what was sent, kernel socket
# drops, CPU used by the collector during the send window, records per CPU-second, and (rampart)
# whether the per-destination totals match exactly what was sent.
#
# Prints a Markdown table and writes it to bench/results/collector-<date>.md (raw per-run numbers
# in collector-<date>.jsonl next to it).
#
# Usage: bench/collector.sh [--rates "250000 500000 1000000 2000000 4000000"] [--seconds 6]
#          [--protocols "netflow sflow"] [--no-fastnetmon] [--no-priority]
#          [--raise-rmem BYTES] [--fastnetmon-rmem BYTES] [--port-base 39100]
#
#   --no-priority   By default (as root) the collector and the sender run at nice -15 in their own
#                   scheduler autogroup, so builds of other users on this shared machine do not
#                   take the collector's core; rampart and fastnetmon get the same treatment.
#   --raise-rmem B  Opt-in: raise net.core.rmem_max to B bytes for the run and restore it after.
#                   rampart asks for a 32 MiB receive buffer (capped by rmem_max); fastnetmon
#                   1.2.4 keeps the system default (net.core.rmem_default) whatever rmem_max is.
#   --fastnetmon-rmem B  Opt-in: give fastnetmon's sockets a B-byte receive buffer by setting
#                   net.core.rmem_default only while fastnetmon starts and binds, restored right
#                   after (fastnetmon 1.2.4 has no setting for it). rampart's buffer is reported in
#                   the same units: 8388608 matches rampart under rmem_max = 4 MiB.
#
# Every loop is bounded; the default run takes about 4 minutes. Traffic goes to 127.0.0.1 only.
set -euo pipefail

rates="250000 500000 1000000 2000000 4000000"
seconds=6
protocols="netflow sflow"
fastnetmon=1
priority=1
raise_rmem=""
fnm_rmem=""
port_base=39100
while (($#)); do
  case "$1" in
    --rates) rates="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --protocols) protocols="$2"; shift 2 ;;
    --no-fastnetmon) fastnetmon=0; shift ;;
    --no-priority) priority=0; shift ;;
    --raise-rmem) raise_rmem="$2"; shift 2 ;;
    --fastnetmon-rmem) fnm_rmem="$2"; shift 2 ;;
    --port-base) port_base="$2"; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ "$seconds" =~ ^[0-9]+$ ]] && ((seconds >= 1 && seconds <= 60)) || { echo "--seconds: 1..60" >&2; exit 2; }
for rate in $rates; do
  [[ "$rate" =~ ^[0-9]+$ ]] && ((rate >= 1 && rate <= 20000000)) || { echo "bad rate $rate" >&2; exit 2; }
done
for protocol in $protocols; do
  [[ "$protocol" == netflow || "$protocol" == sflow ]] || { echo "bad protocol $protocol" >&2; exit 2; }
done

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
rampart="$target_dir/release/rampart"
sender="$target_dir/release/examples/flow_sender"
fastnetmon_bin=/usr/sbin/fastnetmon
stamp="$(date -u +%Y-%m-%dT%H%M%SZ)"
results="$root/bench/results"
mkdir -p "$results"
report="$results/collector-$stamp.md"
raw="$results/collector-$stamp.jsonl"

echo "building release binaries..." >&2
cargo build --release -q -p rampart --bin rampart --example flow_sender

if ((fastnetmon)) && [[ ! -x "$fastnetmon_bin" ]]; then
  echo "no $fastnetmon_bin: skipping fastnetmon (install the Debian package to compare)" >&2
  fastnetmon=0
fi
if ((priority)) && [[ "$(id -u)" != 0 ]]; then
  echo "not root: running without raised priority" >&2
  priority=0
fi
if ((priority)); then
  # Own autogroup (setsid) at nice -15: nice alone means nothing across autogroups.
  launch=(setsid sh -c 'echo -15 > /proc/self/autogroup 2>/dev/null; exec nice -n -15 "$@"' launch)
else
  launch=(setsid sh -c 'exec "$@"' launch)
fi

work="$(mktemp -d /tmp/rampart-collector-bench.XXXXXX)"
started=()      # PIDs this script started, stopped on exit
rmem_restore=""
rmem_default_restore=""
cleanup() {
  local pid
  for pid in "${started[@]+"${started[@]}"}"; do stop_pid "$pid"; done
  if [[ -n "$rmem_default_restore" ]]; then
    echo "$rmem_default_restore" > /proc/sys/net/core/rmem_default
    echo "restored net.core.rmem_default=$rmem_default_restore" >&2
  fi
  if [[ -n "$rmem_restore" ]]; then
    echo "$rmem_restore" > /proc/sys/net/core/rmem_max && echo "restored net.core.rmem_max=$rmem_restore" >&2
  fi
  rm -rf "$work"
}
# Running (not gone, not a zombie waiting to be reaped).
alive() {
  local state
  state="$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null)" || return 1
  [[ -n "$state" && "$state" != Z ]]
}
# Stops one process this script started: TERM, then KILL after 10 s.
stop_pid() {
  local pid="$1" i
  alive "$pid" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    alive "$pid" || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
}
# After a started process was reaped: its PID may be reused, never signal it again.
forget_pid() {
  local pid kept=()
  for pid in "${started[@]+"${started[@]}"}"; do [[ "$pid" == "$1" ]] || kept+=("$pid"); done
  started=("${kept[@]+"${kept[@]}"}")
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rmem_max_before="$(cat /proc/sys/net/core/rmem_max)"
rmem_default_before="$(cat /proc/sys/net/core/rmem_default)"
if [[ -n "$fnm_rmem" ]]; then
  [[ "$fnm_rmem" =~ ^[0-9]+$ ]] || { echo "--fastnetmon-rmem takes bytes" >&2; exit 2; }
fi
if [[ -n "$raise_rmem" ]]; then
  [[ "$raise_rmem" =~ ^[0-9]+$ ]] || { echo "--raise-rmem takes bytes" >&2; exit 2; }
  rmem_restore="$rmem_max_before"
  echo "$raise_rmem" > /proc/sys/net/core/rmem_max
  echo "raised net.core.rmem_max $rmem_max_before -> $raise_rmem for this run" >&2
fi

# --- helpers -----------------------------------------------------------------------------------

# Waits (at most 5 s) until something listens on UDP 127.0.0.1:$1.
wait_udp_port() {
  local hex i
  hex="$(printf '0100007F:%04X' "$1")"
  for ((i = 0; i < 50; i++)); do
    grep -q " $hex " /proc/net/udp && return 0
    sleep 0.1
  done
  echo "nothing listens on udp 127.0.0.1:$1" >&2
  return 1
}

# Kernel drops of the UDP socket on 127.0.0.1:$1 (0 when gone).
udp_drops() {
  local hex
  hex="$(printf '0100007F:%04X' "$1")"
  awk -v a="$hex" '$2 == a { d += $13 } END { print d + 0 }' /proc/net/udp
}

# CPU seconds (user + system, all threads) of $1.
cpu_secs() {
  awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$1/stat"
}

# Seconds the threads of $1 spent runnable but waiting for a CPU (other load on the core).
runqueue_wait_secs() {
  cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ w += $2 } END { printf "%.3f\n", w / 1e9 }'
}

# Receive buffer (bytes, as the kernel accounts it) of the UDP socket on 127.0.0.1:$1.
udp_rcvbuf() {
  ss -ulnmH "sport = :$1" | grep -o 'rb[0-9]*' | head -1 | tr -d rb
}

# Checks that $1 is the process named $2 (setsid must not have forked).
check_pid() {
  local i
  for ((i = 0; i < 20; i++)); do
    [[ "$(cat "/proc/$1/comm" 2>/dev/null)" == "$2" ]] && return 0
    sleep 0.05
  done
  echo "process $1 is not $2" >&2
  return 1
}

# Runs the sender for protocol $1 at rate $2 to port $3, output to $4.
run_sender() {
  local records=$(($2 * seconds)) flag=netflow9
  [[ "$1" == sflow ]] && flag=sflow
  "${launch[@]}" taskset -c 1 "$sender" --protocol "$flag" --target "127.0.0.1:$3" --rate "$2" \
    --records "$records" --max-seconds "$((seconds + 2))" > "$4"
}

port="$port_base"
next_port() { port=$((port + 1)); }

# --- rampart -----------------------------------------------------------------------------------

run_rampart() {
  local protocol="$1" rate="$2" dir="$work/rampart-$1-$2" pid cpu0 cpu1 wait0 wait1 status=0
  mkdir -p "$dir"
  next_port
  local duration=$((seconds + 5))
  "${launch[@]}" taskset -c 0 "$rampart" collect "--$protocol" "127.0.0.1:$port" \
    --duration "$duration" --json > "$dir/collector.json" 2> "$dir/collector.err" &
  pid=$!
  started+=("$pid")
  check_pid "$pid" rampart
  wait_udp_port "$port"
  cpu0="$(cpu_secs "$pid")"; wait0="$(runqueue_wait_secs "$pid")"
  run_sender "$protocol" "$rate" "$port" "$dir/sent.json"
  sleep 1 # let the collector drain its socket
  cpu1="$(cpu_secs "$pid")"; wait1="$(runqueue_wait_secs "$pid")"
  wait "$pid" || status=$?
  forget_pid "$pid"
  if ((status != 0)); then
    echo "rampart failed ($status): $(cat "$dir/collector.err")" >&2
    return 1
  fi
  python3 - "$dir" "$protocol" "$rate" "$cpu0" "$cpu1" "$wait0" "$wait1" >> "$raw" <<'EOF'
import json, sys
d, protocol, rate, cpu0, cpu1, wait0, wait1 = sys.argv[1:]
sent = json.load(open(f"{d}/sent.json"))
got = json.load(open(f"{d}/collector.json"))
total = got["decode"]["total"]
sent_dest = {x["ip"]: (x["packets"], x["bytes"]) for x in sent["destinations"]}
got_dest = {x["ip"]: (x["packets"], x["bytes"]) for x in got["destinations"]}
print(json.dumps({
    "collector": "rampart", "protocol": protocol, "offered_rate": int(rate),
    "sent_records": sent["records"], "sent_datagrams": sent["datagrams"],
    "achieved_rate": sent["achieved_rate"], "send_elapsed": sent["elapsed_secs"],
    "send_errors": sent["send_errors"], "sender_time_limited": sent["stopped_by_time_limit"],
    "received_records": total["records"], "received_datagrams": total["datagrams"],
    "decode_errors": total["decode_errors"], "sequence_gaps": total["sequence_gaps"],
    "socket_drops": sum(c["socket_drops"] or 0 for c in got["decode"]["collectors"]),
    "receive_buffer": got["decode"]["collectors"][0]["receive_buffer"],
    "cpu_secs": float(cpu1) - float(cpu0), "runqueue_wait_secs": float(wait1) - float(wait0),
    "destinations_exact": sent_dest == got_dest,
    "totals_exact": (sent["packets"], sent["bytes"]) == (got["packets"], got["bytes"]),
}))
EOF
}

# --- fastnetmon --------------------------------------------------------------------------------

fnm_dir="$work/fastnetmon"
fnm_pid=""
fnm_netflow_port=0
fnm_sflow_port=0
fnm_metrics_port=0
fnm_rcvbuf=""

start_fastnetmon() {
  mkdir -p "$fnm_dir"
  next_port; fnm_netflow_port=$port
  next_port; fnm_sflow_port=$port
  next_port; fnm_metrics_port=$port
  printf '198.51.100.0/24\n203.0.113.0/24\n' > "$fnm_dir/networks_list"
  : > "$fnm_dir/networks_whitelist"
  # The package's /etc/fastnetmon.conf with what a benchmark needs changed: no usage report (it
  # phones home otherwise), no bans, no API (fixed port 50052), our ports and files, flow
  # collectors on loopback. Everything else (e.g. connection tracking) stays the package default.
  cat > "$fnm_dir/fastnetmon.conf" <<EOF
disable_usage_report = on
logging_level = info
logging_local_syslog_logging = off
logging_remote_syslog_logging = off
enable_ban = off
enable_ban_ipv6 = off
process_incoming_traffic = on
process_outgoing_traffic = on
networks_list_path = $fnm_dir/networks_list
white_list_path = $fnm_dir/networks_whitelist
monitor_local_ip_addresses = off
mirror_afpacket = off
mirror_afxdp = off
mirror_netmap = off
pcap = off
netflow = on
netflow_host = 127.0.0.1
netflow_port = $fnm_netflow_port
netflow_sampling_ratio = 1
sflow = on
sflow_host = 127.0.0.1
sflow_port = $fnm_sflow_port
pid_path = $fnm_dir/fastnetmon.pid
cli_stats_file_path = $fnm_dir/fastnetmon.dat
cli_stats_ipv6_file_path = $fnm_dir/fastnetmon_ipv6.dat
notify_script_path = $fnm_dir/no_notify_script
enable_api = off
prometheus = on
prometheus_host = 127.0.0.1
prometheus_port = $fnm_metrics_port
redis_enabled = off
mongodb_enabled = off
influxdb = off
graphite = off
exabgp = off
gobgp = off
kafka_traffic_export = off
collect_attack_pcap_dumps = off
EOF
  grep -qx 'disable_usage_report = on' "$fnm_dir/fastnetmon.conf" # never start it without this
  if [[ -n "$fnm_rmem" ]]; then
    # Sockets take rmem_default when created: raise it for fastnetmon's start only.
    # (The kernel applies rmem_default as is, not capped by rmem_max, and does not double it.)
    rmem_default_restore="$rmem_default_before"
    echo "$fnm_rmem" > /proc/sys/net/core/rmem_default
    echo "net.core.rmem_default=$fnm_rmem while fastnetmon starts" >&2
  fi
  "${launch[@]}" taskset -c 0 "$fastnetmon_bin" --configuration_file "$fnm_dir/fastnetmon.conf" \
    --log_file "$fnm_dir/fastnetmon.log" > "$fnm_dir/stdout" 2>&1 &
  fnm_pid=$!
  started+=("$fnm_pid")
  check_pid "$fnm_pid" fastnetmon
  wait_udp_port "$fnm_netflow_port"
  wait_udp_port "$fnm_sflow_port"
  if [[ -n "$rmem_default_restore" ]]; then
    echo "$rmem_default_restore" > /proc/sys/net/core/rmem_default
    rmem_default_restore=""
    echo "restored net.core.rmem_default=$rmem_default_before" >&2
  fi
  fnm_rcvbuf="$(udp_rcvbuf "$fnm_netflow_port")/$(udp_rcvbuf "$fnm_sflow_port")"
  local i
  for ((i = 0; i < 50; i++)); do
    fnm_metric fastnetmon_total_simple_packets_processed > /dev/null 2>&1 && break
    sleep 0.1
  done
  fnm_metric fastnetmon_total_simple_packets_processed > /dev/null
  sleep 1
}

# Value of Prometheus metric $1 from fastnetmon.
fnm_metric() {
  curl -sf --max-time 5 "http://127.0.0.1:$fnm_metrics_port/metrics" |
    awk -v m="$1" '$1 == m { print $2; found = 1 } END { exit !found }'
}

run_fastnetmon() {
  local protocol="$1" rate="$2" dir="$work/fastnetmon-$1-$2" fnm_port
  mkdir -p "$dir"
  fnm_port=$fnm_netflow_port
  [[ "$protocol" == sflow ]] && fnm_port=$fnm_sflow_port
  local records0 v9flows0 drops0 cpu0 wait0 records1 v9flows1 drops1 cpu1 wait1
  records0="$(fnm_metric fastnetmon_total_simple_packets_processed)"
  v9flows0="$(fnm_metric fastnetmon_netflow_v9_total_flows)"
  drops0="$(udp_drops "$fnm_port")"
  cpu0="$(cpu_secs "$fnm_pid")"; wait0="$(runqueue_wait_secs "$fnm_pid")"
  run_sender "$protocol" "$rate" "$fnm_port" "$dir/sent.json"
  sleep 1 # let the collector drain its socket
  cpu1="$(cpu_secs "$fnm_pid")"; wait1="$(runqueue_wait_secs "$fnm_pid")"
  records1="$(fnm_metric fastnetmon_total_simple_packets_processed)"
  v9flows1="$(fnm_metric fastnetmon_netflow_v9_total_flows)"
  drops1="$(udp_drops "$fnm_port")"
  python3 - "$dir" "$protocol" "$rate" "$cpu0" "$cpu1" "$wait0" "$wait1" "$records0" "$records1" \
    "$v9flows0" "$v9flows1" "$drops0" "$drops1" >> "$raw" <<'EOF'
import json, sys
d, protocol, rate, cpu0, cpu1, wait0, wait1, r0, r1, v0, v1, drops0, drops1 = sys.argv[1:]
sent = json.load(open(f"{d}/sent.json"))
print(json.dumps({
    "collector": "fastnetmon", "protocol": protocol, "offered_rate": int(rate),
    "sent_records": sent["records"], "sent_datagrams": sent["datagrams"],
    "achieved_rate": sent["achieved_rate"], "send_elapsed": sent["elapsed_secs"],
    "send_errors": sent["send_errors"], "sender_time_limited": sent["stopped_by_time_limit"],
    # Every flow (NetFlow) or raw packet header sample (sFlow) fastnetmon processed.
    "received_records": int(float(r1)) - int(float(r0)),
    "netflow_v9_flows": int(float(v1)) - int(float(v0)),
    "socket_drops": int(drops1) - int(drops0),
    "receive_buffer": None,  # see the report header
    "cpu_secs": float(cpu1) - float(cpu0), "runqueue_wait_secs": float(wait1) - float(wait0),
    "destinations_exact": None, "totals_exact": None,
}))
EOF
}

# --- runs --------------------------------------------------------------------------------------

load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
: > "$raw"
for protocol in $protocols; do
  for rate in $rates; do
    echo "rampart    $protocol $rate records/s" >&2
    run_rampart "$protocol" "$rate"
  done
done
if ((fastnetmon)); then
  start_fastnetmon
  fnm_idle0="$(cpu_secs "$fnm_pid")"; sleep 2; fnm_idle1="$(cpu_secs "$fnm_pid")"
  fnm_idle="$(awk -v a="$fnm_idle0" -v b="$fnm_idle1" 'BEGIN { printf "%.3f", (b - a) / 2 }')"
  for protocol in $protocols; do
    for rate in $rates; do
      echo "fastnetmon $protocol $rate records/s" >&2
      run_fastnetmon "$protocol" "$rate"
    done
  done
  grep -q "disable_usage_report" "$fnm_dir/fastnetmon.conf"
  stop_pid "$fnm_pid"
  wait "$fnm_pid" 2>/dev/null || true
  forget_pid "$fnm_pid"
else
  fnm_idle=""
fi
load_after="$(cut -d' ' -f1-3 /proc/loadavg)"

# --- report ------------------------------------------------------------------------------------

python3 - "$raw" "$report" <<EOF
import json, sys
raw, out = sys.argv[1:]
runs = [json.loads(line) for line in open(raw)]
def fmt_rate(x): return f"{x/1e6:.2f}M" if x >= 1e6 else f"{x/1e3:.0f}k"
def per_cpu(r): return r["received_records"] / r["cpu_secs"] if r["cpu_secs"] > 0 else float("nan")
def loss(r): return 100.0 * (r["sent_records"] - r["received_records"]) / r["sent_records"] if r["sent_records"] else 0.0
lines = []
p = lines.append
p(f"# Live collector benchmark, $stamp")
p("")
p("Loopback sender (crates/rampart/examples/flow_sender.rs, core 1) -> collector (core 0) ->")
p("per-destination counters. NetFlow v9: 30 IPv4 flow records per datagram, template every 20")
p("datagrams. sFlow v5: 8 flow samples per datagram, 128-byte Ethernet/IPv4 headers, 1:1000.")
p(f"Each run offers the rate for {$seconds} s (records = rate x {$seconds}).")
p("")
p("- machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores, kernel $(uname -r)")
p("- rampart: $(git -C "$root" rev-parse --short HEAD)$(git -C "$root" diff --quiet HEAD -- crates || echo ' (+ uncommitted changes)'), \`rampart collect --json\`, current-thread runtime")
p("- fastnetmon: $( ((fastnetmon)) && "$fastnetmon_bin" --version 2>&1 | head -1 | sed 's/^Version: //; s/ *$//') (Debian), package defaults + disable_usage_report = on, enable_ban = off, Prometheus counters$( [[ -n "$fnm_idle" ]] && echo ", idle CPU ${fnm_idle} s/s")")
p("- net.core.rmem_max: $rmem_max_before$( [[ -n "$raise_rmem" ]] && echo " raised to $raise_rmem for the run"), rmem_default $rmem_default_before")
rb = sorted({r["receive_buffer"] for r in runs if r["collector"] == "rampart"})
p(f"- socket receive buffer as the kernel accounts it (setsockopt values are doubled): rampart {', '.join(map(str, rb))} (asks 32 MiB, capped by rmem_max)"
  + ("; fastnetmon netflow/sflow $fnm_rcvbuf$( [[ -n "$fnm_rmem" ]] && echo " (--fastnetmon-rmem $fnm_rmem)" || echo " (system default)")" if "$fnm_rcvbuf" else ""))
p("- priority: $( ((priority)) && echo 'collector and sender at nice -15 in their own autogroups (shared machine)' || echo 'default')")
p("- load average before / after: $load_before / $load_after")
p("")
p("CPU = user+system CPU seconds of the collector process (all threads) from just before the")
p("sender starts to 1 s after it stops; rec/CPU-s = records received per CPU-second (what one")
p("core could sustain if the collector used all of it). Wait = seconds the collector was runnable")
p("but waiting for the core (other load). Socket drops = datagrams (30 NetFlow or 8 sFlow records")
p("each) the kernel dropped on the collector's socket. Sent rec/s below the offered rate is the")
p("sender's own limit (its core also runs the kernel's loopback receive path).")
p("Exact = rampart's per-destination packet and byte totals equal the sender's, for every destination.")
p("")
p("| proto | offered rec/s | sent rec/s | collector | received | loss % | socket drops | CPU s | CPU % | rec/CPU-s | wait s | exact |")
p("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|:-:|")
by_key = {}
for r in runs:
    by_key.setdefault((r["protocol"], r["offered_rate"]), {})[r["collector"]] = r
for (protocol, rate), pair in sorted(by_key.items()):
    for name in ("rampart", "fastnetmon"):
        r = pair.get(name)
        if not r: continue
        exact = {True: "yes", False: "**no**", None: "n/a"}[r["destinations_exact"] and r["totals_exact"] if r["destinations_exact"] is not None else None]
        window = r["send_elapsed"] + 1.0
        p(f"| {protocol} | {fmt_rate(rate)} | {fmt_rate(r['achieved_rate'])} | {name} | {r['received_records']:,} | "
          f"{loss(r):.2f} | {r['socket_drops']:,} | {r['cpu_secs']:.2f} | {100*r['cpu_secs']/window:.0f} | "
          f"{fmt_rate(per_cpu(r))} | {r['runqueue_wait_secs']:.2f} | {exact} |")
p("")
if any(len(pair) == 2 for pair in by_key.values()):
    p("rampart / fastnetmon, same stream:")
    p("")
    p("| proto | offered rec/s | received (ratio) | loss % rampart / fastnetmon | rec/CPU-s (ratio) |")
    p("|---|---:|---:|---:|---:|")
    for (protocol, rate), pair in sorted(by_key.items()):
        if len(pair) != 2: continue
        a, b = pair["rampart"], pair["fastnetmon"]
        rx = a["received_records"] / b["received_records"] if b["received_records"] else float("inf")
        eff = per_cpu(a) / per_cpu(b) if per_cpu(b) > 0 else float("inf")
        p(f"| {protocol} | {fmt_rate(rate)} | {rx:.2f}x | {loss(a):.2f} / {loss(b):.2f} | {eff:.1f}x |")
    p("")
for protocol in sorted({r["protocol"] for r in runs}):
    for name in ("rampart", "fastnetmon"):
        rs = [r for r in runs if r["protocol"] == protocol and r["collector"] == name]
        if not rs: continue
        clean = [r["achieved_rate"] for r in rs if r["received_records"] == r["sent_records"]]
        best = max(rs, key=per_cpu)
        p(f"- {protocol}, {name}: highest rate received without loss {fmt_rate(max(clean)) if clean else 'none'} rec/s; "
          f"best efficiency {fmt_rate(per_cpu(best))} records per CPU-second (at {fmt_rate(best['achieved_rate'])} rec/s)")
p("")
p("Raw numbers: " + raw.split("/")[-1])
text = "\n".join(lines) + "\n"
open(out, "w").write(text)
print(text)
EOF
echo "wrote $report" >&2
