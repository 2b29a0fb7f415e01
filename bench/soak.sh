#!/usr/bin/env bash
# Memory soak of the daemon under churn: `rampart run` on loopback, protecting 198.51.0.0/16 and
# 2001:db8::/32 with 127.0.0.1 as its one exporter, fed NetFlow v9 by
# crates/rampart/examples/flow_sender.rs in churn mode (random destinations over the whole /16,
# random sources, eight short floods on random hosts at any time, each 5 to 30 s) at a paced
# rate. Samples the daemon's resident memory (VmRSS, VmHWM) and the store's file size every
# 10 s, plus the engine counters from its metrics endpoint, and writes a Markdown table to
# bench/results/soak-<date>.md. Not run in CI.
#
# Usage: bench/soak.sh            (SOAK_SECONDS=600 SOAK_RATE=200000 by default)
#        SOAK_SECONDS=300 SOAK_RATE=100000 bench/soak.sh [--port-base 39300] [--no-build]
#
# Traffic goes to 127.0.0.1 only. Every loop is bounded in count and time; the sender stops by
# itself after SOAK_SECONDS (--max-seconds), and the daemon is stopped by its PID (SIGTERM,
# then SIGKILL after 10 s). Only processes this script started are signalled.
set -euo pipefail

seconds="${SOAK_SECONDS:-600}"
rate="${SOAK_RATE:-200000}"
sample_every=10
port_base=39300
build=1
while (($#)); do
  case "$1" in
    --port-base) port_base="$2"; shift 2 ;;
    --no-build) build=0; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ "$seconds" =~ ^[0-9]+$ ]] && ((seconds >= 30 && seconds <= 86400)) \
  || { echo "SOAK_SECONDS: 30..86400" >&2; exit 2; }
[[ "$rate" =~ ^[0-9]+$ ]] && ((rate >= 1000 && rate <= 5000000)) \
  || { echo "SOAK_RATE: 1000..5000000 records/s" >&2; exit 2; }
[[ "$port_base" =~ ^[0-9]+$ ]] && ((port_base >= 1024 && port_base <= 65000)) \
  || { echo "--port-base: 1024..65000" >&2; exit 2; }

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
rampart="$target_dir/release/rampart"
sender="$target_dir/release/examples/flow_sender"
stamp="$(date -u +%Y-%m-%dT%H%M%SZ)"
results="$root/bench/results"
mkdir -p "$results"
report="$results/soak-$stamp.md"

if ((build)); then
  echo "building release binaries..." >&2
  cargo build --release -q -p rampart --bin rampart --example flow_sender
fi
[[ -x "$rampart" && -x "$sender" ]] || { echo "missing $rampart or $sender (build them)" >&2; exit 1; }

work="$(mktemp -d /tmp/rampart-soak.XXXXXX)"
started=() # PIDs this script started, stopped on exit
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
cleanup() {
  local pid
  for pid in "${started[@]+"${started[@]}"}"; do stop_pid "$pid"; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Waits (at most 10 s) until something listens on UDP 127.0.0.1:$1.
wait_udp_port() {
  local hex i
  hex="$(printf '0100007F:%04X' "$1")"
  for ((i = 0; i < 100; i++)); do
    grep -q " $hex " /proc/net/udp && return 0
    sleep 0.1
  done
  echo "nothing listens on udp 127.0.0.1:$1" >&2
  return 1
}
# VmRSS or VmHWM ($2) of $1 in KiB (empty when gone).
vm_kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null; }
file_bytes() { stat -c %s "$1" 2>/dev/null || echo 0; }
# One counter from the daemon's metrics (empty when absent).
metric() { awk -v m="$2" '$1 == m { print $2; exit }' <<< "$1"; }

netflow_port=$((port_base + 1))
metrics_port=$((port_base + 2))
data="$work/data"
cat > "$work/soak.toml" <<EOF
protected = ["198.51.0.0/16", "2001:db8::/32"]

# The whole /16 carries about 1 Mpps of background: only the floods on single hosts are attacks.
[aggregation]
network_pps = 1000000000
network_mbps = 100000000
network_new_flows = 1000000000

[inputs]
netflow = "127.0.0.1:$netflow_port"

[[inputs.exporter]]
address = "127.0.0.1"

[store]
data_dir = "$data"

[outputs]
stdout = true
metrics = "127.0.0.1:$metrics_port"
EOF

# --- the daemon --------------------------------------------------------------------------------
setsid "$rampart" run --config "$work/soak.toml" > "$work/events.jsonl" 2> "$work/daemon.err" &
daemon=$!
started+=("$daemon")
wait_udp_port "$netflow_port"
for ((i = 0; i < 50; i++)); do
  curl -fsS "http://127.0.0.1:$metrics_port/metrics" > /dev/null 2>&1 && break
  sleep 0.1
done
[[ "$(cat "/proc/$daemon/comm" 2>/dev/null)" == rampart ]] || { echo "daemon did not start:" >&2; cat "$work/daemon.err" >&2; exit 1; }
rss_start="$(vm_kib "$daemon" VmRSS)"
echo "daemon $daemon up, RSS ${rss_start} KiB; sending $rate records/s for $seconds s" >&2

# --- the sender (stops by itself: --records and --max-seconds) ---------------------------------
setsid "$sender" --churn --protocol netflow9 --target "127.0.0.1:$netflow_port" --rate "$rate" \
  --records "$((rate * seconds))" --max-seconds "$seconds" --seed 11 > "$work/sent.json" 2> "$work/sender.err" &
sender_pid=$!
started+=("$sender_pid")

# --- samples -----------------------------------------------------------------------------------
samples="$work/samples.tsv"
t0="$(date +%s)"
max_samples=$((seconds / sample_every + 3))
for ((n = 0; n < max_samples; n++)); do
  now="$(date +%s)"
  elapsed=$((now - t0))
  rss="$(vm_kib "$daemon" VmRSS)"
  [[ -n "$rss" ]] || { echo "the daemon is gone:" >&2; cat "$work/daemon.err" >&2; exit 1; }
  hwm="$(vm_kib "$daemon" VmHWM)"
  scrape="$(curl -fsS --max-time 5 "http://127.0.0.1:$metrics_port/metrics" 2>/dev/null || true)"
  records="$(metric "$scrape" rampart_engine_records_total)"
  late="$(metric "$scrape" rampart_engine_late_shares_total)"
  active="$(metric "$scrape" rampart_active_attacks)"
  onsets="$(grep -c '"event":"onset"' "$work/events.jsonl" || true)"
  store="$(file_bytes "$data/rampart.redb")"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$elapsed" "$rss" "$hwm" "$store" "${records:--}" \
    "${late:--}" "${active:--}" "${onsets:-0}" | tee -a "$samples" >&2
  alive "$sender_pid" || break
  # Sleep to the next multiple of the sampling period.
  next=$((t0 + (n + 1) * sample_every))
  now="$(date +%s)"
  ((next > now)) && sleep "$((next - now))"
done
# The sender stops by itself at --max-seconds; stop it anyway should it not have.
stop_pid "$sender_pid"
wait "$sender_pid" || true
started=("$daemon")
sleep 2 # the daemon drains its socket
rss_end="$(vm_kib "$daemon" VmRSS)"
hwm_end="$(vm_kib "$daemon" VmHWM)"
stop_pid "$daemon"
wait "$daemon" 2> /dev/null || true
started=()
store_end="$(file_bytes "$data/rampart.redb")"
baselines_end="$(file_bytes "$data/baselines.bin")"

python3 - "$work" "$samples" "$report" "$rate" "$seconds" "$rss_start" "$rss_end" "$hwm_end" \
  "$store_end" "${baselines_end:-0}" <<'EOF'
import json, sys, os, platform
work, samples, report, rate, seconds, rss_start, rss_end, hwm_end, store_end, baselines = sys.argv[1:]
sent = json.load(open(f"{work}/sent.json"))
rows = [line.rstrip("\n").split("\t") for line in open(samples) if line.strip()]
events = [json.loads(l) for l in open(f"{work}/events.jsonl") if l.strip()]
kinds = {}
for e in events:
    kinds[e.get("event")] = kinds.get(e.get("event"), 0) + 1
mib = lambda kib: float(kib) / 1024
def at(t):
    return min(rows, key=lambda r: abs(int(r[0]) - t))
first, minute, last = rows[0], at(60), rows[-1]
with open(report, "w") as out:
    w = lambda s="": print(s, file=out)
    w(f"# rampart run: memory under churn ({os.path.basename(report)[5:-3]})")
    w()
    w(f"- offered {int(rate):,} NetFlow v9 records/s for {seconds} s (flow_sender --churn: random hosts of "
      "198.51.0.0/16, random sources, 8 concurrent floods of 5-30 s); "
      f"sent {sent['records']:,} records at {sent['achieved_rate']:,.0f}/s, {sent['send_errors']} send errors")
    w(f"- events: {kinds.get('onset', 0)} onsets, {kinds.get('update', 0)} updates, {kinds.get('end', 0)} ends")
    w(f"- RSS: {mib(rss_start):.1f} MiB idle before traffic, {mib(first[1]):.1f} MiB at 0 s, "
      f"{mib(minute[1]):.1f} MiB at {minute[0]} s, {mib(last[1]):.1f} MiB at {last[0]} s, "
      f"{mib(rss_end):.1f} MiB at the end; peak (VmHWM) {mib(hwm_end):.1f} MiB")
    w(f"- store (rampart.redb) {int(store_end) / 2**20:.2f} MiB after shutdown; baselines {int(baselines) / 2**20:.2f} MiB")
    w(f"- machine: {platform.node()}, {os.cpu_count()} CPUs (shared), {platform.release()}")
    tuned = " ".join(f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith("MALLOC_"))
    w(f"- allocator: glibc, {tuned or 'default settings'}")
    w()
    w("| t (s) | RSS (MiB) | peak RSS (MiB) | store (MiB) | records observed | late shares | active attacks | onsets |")
    w("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for t, rss, hwm, store, records, late, active, onsets in rows:
        w(f"| {t} | {mib(rss):.1f} | {mib(hwm):.1f} | {int(store) / 2**20:.2f} | {records} | {late} | {active} | {onsets} |")
print(open(report).read())
EOF
echo "wrote $report" >&2
