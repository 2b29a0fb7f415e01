#!/usr/bin/env bash
# Detection side by side: the same attack scenarios, replayed in real time as sFlow v5 (1:1,
# or sampled 1:N with --sample N, the rate announced in each sample) on loopback, to `rampart run` and to Debian's fastnetmon 1.2.4 at once, with the same
# per-host thresholds. For each scenario: which attacks each one reported, with which
# classification, and the delay from the attack's first packet to the
# report (onset line on rampart's stdout; fastnetmon's ban notification script).
#
# Prints a Markdown table and writes it to bench/results/detection-<date>.md.
#
# Usage: bench/detection.sh [--scenarios "syn_flood udp_flood ..."] [--threshold-pps 20000]
#                           [--sample N] [--fastnetmon-average SECONDS] [--netflow ACTIVE_SECS]
# fastnetmon runs its package default average_calculation_time (5 s) unless
# --fastnetmon-average sets it (1 s is its fastest).
# --netflow ACTIVE_SECS: instead of sFlow, a real-time NetFlow v9 exporter: the capture is
# replayed at its own speed by tcpreplay into a veth pair of a network namespace made here,
# and softflowd (active timeout ACTIVE_SECS, its `maxlife`; other timeouts at its defaults)
# captures the other end and exports to both collectors. Needs root; installs tcpreplay.
# Every process is started here and stopped by its PID; traffic goes to 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."

scenarios="syn_flood ack_flood udp_flood icmp_flood fragment_flood dns_amplification ntp_amplification memcached_amplification carpet_bombing syn_flood_v6 udp_flood_v6 outbound_syn_flood dns_reflector_abuse"
threshold_pps=20000
sample=1
fnm_average=""
netflow_active=""
while (($#)); do
  case "$1" in
    --scenarios) scenarios="$2"; shift 2 ;;
    --threshold-pps) threshold_pps="$2"; shift 2 ;;
    --sample) sample="$2"; shift 2 ;;
    --fastnetmon-average) fnm_average="$2"; shift 2 ;;
    --netflow) netflow_active="$2"; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ "$threshold_pps" =~ ^[0-9]+$ ]] || { echo "--threshold-pps takes a number" >&2; exit 2; }
[[ "$sample" =~ ^[1-9][0-9]*$ ]] || { echo "--sample takes a positive number" >&2; exit 2; }
[[ -z "$fnm_average" || "$fnm_average" =~ ^[1-9][0-9]*$ ]] || { echo "--fastnetmon-average takes seconds" >&2; exit 2; }
[[ -z "$netflow_active" || "$netflow_active" =~ ^[1-9][0-9]*$ ]] || { echo "--netflow takes seconds" >&2; exit 2; }
if [[ -n "$netflow_active" ]]; then
  [[ $(id -u) == 0 ]] || { echo "--netflow needs root (network namespace, capture)" >&2; exit 1; }
  command -v tcpreplay > /dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tcpreplay > /dev/null
  command -v softflowd > /dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq softflowd > /dev/null
fi
fastnetmon_bin=/usr/sbin/fastnetmon
[[ -x "$fastnetmon_bin" ]] || { echo "fastnetmon missing: apt-get install fastnetmon" >&2; exit 1; }

cargo build --release -q -p rampart
rampart=$PWD/target/release/rampart
here=$PWD
work=$(mktemp -d /tmp/rampart-detection-bench.XXXXXX)
pids=()
netns=rdb$$
veth_root=rdba$$
veth_ns=rdbb$$
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  if [[ -n "$netflow_active" ]]; then
    ip link del "$veth_root" 2> /dev/null || true
    ip netns del "$netns" 2> /dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  python3 -c "import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])"
}
wait_udp_port() {
  for _ in $(seq 100); do
    ss -Huln "sport = :$1" | grep -q . && return 0
    sleep 0.05
  done
  echo "nothing listens on UDP $1" >&2
  return 1
}
now() { python3 -c 'import time; print(f"{time.time():.6f}")'; }

printf '198.51.100.0/24\n2001:db8:100::/48\n' > "$work/networks_list"
: > "$work/networks_whitelist"
# fastnetmon 1.2.4 calls this with: ip, direction, pps, action (ban/unban); details on stdin,
# which must be read.
printf '%s\n' '#!/bin/sh' \
  'now=$(date +%s.%N)' \
  'details=$(cat)' \
  'kind=$(printf "%s" "$details" | grep -i -m1 "attack type" | cut -d: -f2- | tr -d "\n" | tr -s " ")' \
  'echo "$now $1 $2 $3 $4 $kind" >> "$(dirname "$0")/bans.log"' > "$work/notify.sh"
chmod +x "$work/notify.sh"
printf 'protected = ["198.51.100.0/24", "2001:db8:100::/48"]\n[thresholds]\npps = %s\nmbps = 1000\n' \
  "$threshold_pps" > "$work/rampart.toml"

if [[ -n "$netflow_active" ]]; then
  # The replayed frames go out of the namespace's end and are captured at the root end, where
  # the kernel drops them (not addressed to this host's MAC): nothing is routed anywhere.
  ip netns add "$netns"
  ip link add "$veth_root" type veth peer name "$veth_ns"
  ip link set "$veth_ns" netns "$netns"
  ip link set "$veth_root" up
  ip -n "$netns" link set "$veth_ns" up
  ip -n "$netns" link set lo up
fi
input_flag=--sflow
[[ -z "$netflow_active" ]] || input_flag=--netflow

rows=()
for scenario in $scenarios; do
  dir="$work/$scenario"
  mkdir -p "$dir"
  "$rampart" generate "$scenario" --seed 11 --duration 16 --attack-duration 12 -o "$dir/capture.pcap" 2> /dev/null
  rport=$(free_port)
  fport=$(free_port)
  mport=$(free_port)

  "$rampart" run --config "$work/rampart.toml" --data-dir "$dir/data" "$input_flag" "127.0.0.1:$rport" \
    --metrics "127.0.0.1:$mport" > "$dir/rampart.fifo.out" 2> "$dir/rampart.err" &
  rampart_pid=$!
  pids+=("$rampart_pid")
  # Timestamp rampart's stdout lines as they appear.
  python3 -u -c '
import sys, time
with open(sys.argv[1]) as src, open(sys.argv[2], "w") as dst:
    deadline = time.time() + 120
    while time.time() < deadline:
        line = src.readline()
        if line:
            dst.write(f"{time.time():.6f} {line}"); dst.flush()
        else:
            time.sleep(0.002)
' "$dir/rampart.fifo.out" "$dir/rampart.out" &
  stamper_pid=$!
  pids+=("$stamper_pid")

  {
    echo "disable_usage_report = on"
    echo "logging_level = info"
    echo "logging_local_syslog_logging = off"
    echo "logging_remote_syslog_logging = off"
    echo "enable_ban = on"
    echo "enable_ban_ipv6 = on"
    echo "process_incoming_traffic = on"
    echo "process_outgoing_traffic = on"
    echo "networks_list_path = $work/networks_list"
    echo "white_list_path = $work/networks_whitelist"
    echo "notify_script_path = $work/notify.sh"
    echo "notify_script_pass_details = on"
    echo "check_period = 1"
    [[ -z "$fnm_average" ]] || echo "average_calculation_time = $fnm_average"
    echo "ban_for_pps = on"
    echo "ban_for_bandwidth = on"
    echo "ban_for_flows = off"
    echo "threshold_pps = $threshold_pps"
    echo "threshold_mbps = 1000"
    echo "mirror_afpacket = off"
    echo "mirror_afxdp = off"
    echo "mirror_netmap = off"
    echo "pcap = off"
    if [[ -n "$netflow_active" ]]; then
      echo "netflow = on"
      echo "netflow_port = $fport"
      echo "netflow_host = 127.0.0.1"
      echo "sflow = off"
    else
      echo "netflow = off"
      echo "sflow = on"
      echo "sflow_port = $fport"
      echo "sflow_host = 127.0.0.1"
    fi
    echo "enable_api = off"
    echo "prometheus = off"
    echo "pid_path = $dir/fastnetmon.pid"
    echo "cli_stats_file_path = $dir/fastnetmon.dat"
    echo "cli_stats_ipv6_file_path = $dir/fastnetmon_ipv6.dat"
  } > "$dir/fastnetmon.conf"
  grep -qx 'disable_usage_report = on' "$dir/fastnetmon.conf" # never start it without this
  "$fastnetmon_bin" --configuration_file "$dir/fastnetmon.conf" --log_file "$dir/fastnetmon.log" \
    > "$dir/fastnetmon.out" 2>&1 &
  fnm_pid=$!
  pids+=("$fnm_pid")
  wait_udp_port "$rport"
  wait_udp_port "$fport"
  sleep 1
  : > "$work/bans.log"

  if [[ -n "$netflow_active" ]]; then
    # One softflowd per collector, both capturing the same interface (softflowd 1.1.0 sends
    # to one destination unless load balancing).
    softflowd_pids=()
    for port in "$rport" "$fport"; do
      softflowd -d -i "$veth_root" -v 9 -t "maxlife=$netflow_active" -n "127.0.0.1:$port" \
        -p "$dir/softflowd-$port.pid" -c "$dir/softflowd-$port.ctl" > "$dir/softflowd-$port.log" 2>&1 &
      softflowd_pids+=($!)
      pids+=($!)
    done
    sleep 1
    replay_start=$(now)
    timeout 60 ip netns exec "$netns" tcpreplay -q -i "$veth_ns" "$dir/capture.pcap" > "$dir/replay.err" 2>&1 \
      || echo "$scenario: tcpreplay exited $?: $(tail -c 300 "$dir/replay.err")" >&2
    # Long flows come out at the active timeout after they began, and again every timeout.
    sleep $((netflow_active + 3))
    kill "${softflowd_pids[@]}" 2> /dev/null || true
  else
    replay_start=$(now)
    "$rampart" replay "$dir/capture.pcap" --sflow "127.0.0.1:$rport" --sflow "127.0.0.1:$fport" \
      --speed 1 --sample "$sample" --max-seconds 60 2> "$dir/replay.err"
  fi
  sleep 3
  kill -INT "$rampart_pid" 2> /dev/null || true
  kill "$fnm_pid" 2> /dev/null || true
  sleep 1
  kill "$stamper_pid" 2> /dev/null || true
  cp "$work/bans.log" "$dir/bans.log"

  row=$(python3 - "$dir" "$scenario" "$replay_start" <<'PY'
import json, math, sys
d, scenario, replay_start = sys.argv[1], sys.argv[2], float(sys.argv[3])
truth = json.load(open(f"{d}/capture.pcap.truth.json"))
t0 = truth["capture"]["first_packet"]
attacks = truth["attacks"]
def onset_wall(start):
    # When the attack began, on this replay's wall clock.
    return replay_start + (start - t0)
def out(direction):
    return " (out)" if direction in ("outbound", "outgoing") else ""
want = ", ".join(sorted({f'{a["vector"]} → {a["target"]}{out(a["direction"])}' for a in attacks})) or "none"
first = min((a["start"] for a in attacks), default=None)
r_found, r_delay, r_named = [], None, None
# Under sampling the onset may come before 32 packets were observed: its vectors are then
# named by the update that brings them (both delays are reported).
named_ids = set()
for line in open(f"{d}/rampart.out"):
    stamp, _, text = line.partition(" ")
    try:
        event = json.loads(text)
    except ValueError:
        continue
    a = event.get("attack", {})
    if first is not None and r_delay is None and event.get("event") == "onset":
        r_delay = float(stamp) - onset_wall(first)
    if event.get("event") not in ("onset", "update") or not a.get("vectors") or a["id"] in named_ids:
        continue
    named_ids.add(a["id"])
    t = a["target"]
    target = t.get("host") or t.get("prefix") or t.get("group", {}).get("name")
    r_found.append(f'{"+".join(a["vectors"])} → {target}{out(a["direction"])}')
    if first is not None and r_named is None:
        r_named = float(stamp) - onset_wall(first)
f_found, f_delay = [], None
for line in open(f"{d}/bans.log"):
    parts = line.split(maxsplit=5)
    if len(parts) < 5 or parts[4] != "ban":
        continue
    kind = parts[5].strip() if len(parts) > 5 else ""
    f_found.append(f'{kind or "?"} → {parts[1]}{out(parts[2])}')
    if first is not None and f_delay is None:
        f_delay = float(parts[0]) - onset_wall(first)
# Seconds from the attack's first packet, and from the end of the first whole wall-clock second
# the attack covered (the earliest a per-second detector can be sure).
def fmt(x):
    if x is None:
        return "—"
    first_full_end = math.ceil(onset_wall(first)) + 1 - onset_wall(first)
    return f"{x:.2f} s ({x - first_full_end:+.2f} s)"
print(f'| {scenario} | {want} | {"; ".join(r_found) or "none"} | {fmt(r_delay)} | {fmt(r_named)} | {"; ".join(f_found) or "none"} | {fmt(f_delay)} |')
PY
  )
  rows+=("$row")
  echo "$row" >&2
done

stamp_name=$(date -u +%Y-%m-%dT%H%M%SZ)
mkdir -p "$here/bench/results"
{
  echo "# Detection side by side, $stamp_name"
  echo
  echo "Each scenario from \`rampart generate SCENARIO --seed 11 --duration 16 --attack-duration 12\` (attack"
  if [[ -n "$netflow_active" ]]; then
    echo "50 kpps from second 1 to 13 over 5 kpps of benign web traffic) replayed in real time by tcpreplay into a veth pair,"
    echo "captured by softflowd 1.1.0 (NetFlow v9, active timeout (maxlife) ${netflow_active} s, other timeouts at its defaults; one instance per collector) exporting to both"
  else
    echo "50 kpps from second 1 to 13 over 5 kpps of benign web traffic) replayed in real time by \`rampart replay\` as sFlow v5 sampled 1:$sample to both"
  fi
  echo "collectors at once. Both: per-host threshold $threshold_pps pps / 1000 Mbps, protected"
  echo "198.51.100.0/24 and 2001:db8:100::/48. Rampart also applies its default per-class and per-/24"
  echo "(/64) thresholds; fastnetmon 1.2.4 runs its package defaults (average_calculation_time ${fnm_average:-5} s${fnm_average:+ here; package default 5 s},"
  echo "check_period 1 s) plus disable_usage_report = on and a notify script."
  echo "Delay: from the attack's first packet (on the replay's wall clock) to rampart's onset line /"
  echo "fastnetmon's ban notification; in brackets, relative to the end of the first whole wall-clock"
  echo "second the attack covered (negative: reported during the first partial second)."
  echo
  echo "Rampart's vector: the first event (onset, or the update once 32 packets were observed) naming it."
  echo
  echo "| scenario | ground truth | rampart found | rampart delay | rampart vector named | fastnetmon found | fastnetmon delay |"
  echo "|---|---|---|---:|---:|---|---:|"
  printf '%s\n' "${rows[@]}"
} | tee "$here/bench/results/detection-$stamp_name.md"
