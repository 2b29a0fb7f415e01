#!/usr/bin/env bash
# Onset to route: how long from an attack's first packet until BIRD holds the FlowSpec rule
# Rampart announced for it (issue 9 §7: goal under 0.5 s p50). Run as `bench/bgp.sh --onset`.
#
# One `rampart run` (sFlow in, [mitigation] ladder = ["discard"], [bgp] peered with a BIRD 2
# started here on 127.0.0.1) for the whole run. Each run replays a generated udp_flood (50 kpps
# from second 1 over 5 kpps of benign web traffic, sFlow v5 1:1, `rampart replay --speed 1`,
# as bench/detection.sh does) at a fresh target 198.51.100.(20+i), and polls
# `birdc show route table flowtab4` every 5 ms until the rule `dst TARGET/32` is there.
# The attack's first packet on the wall clock is the first datagram the replay sends (read by
# a third collector here) plus the attack's offset in the capture. Also timed: Rampart's onset
# line on stdout (detection alone).
#
# The first --fastnetmon-runs runs (default 3) replay the same capture as bench/detection.sh
# (16 s, attack 12 s) to Debian's fastnetmon too, at the same thresholds, and time its ban
# notification: the anchor, measured in the same run on the same replay. The other runs use a
# 4 s capture (attack 3 s) and stop the replay once the rule is in BIRD.
#
# Prints a Markdown table and writes it to bench/results/bgp-onset-<date>.md.
# Usage: bench/bgp.sh --onset [--runs 40] [--fastnetmon-runs 3]
# Bounded: at most 60 runs, every wait 20 s at most (60 s for the session). Traffic to 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=40
fnm_runs=3
while (($#)); do
  case "$1" in
    --runs) runs="$2"; shift 2 ;;
    --fastnetmon-runs) fnm_runs="$2"; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ "$runs" =~ ^[0-9]+$ ]] && ((runs >= 1 && runs <= 60)) || { echo "--runs takes 1 to 60" >&2; exit 2; }
[[ "$fnm_runs" =~ ^[0-9]+$ ]] && ((fnm_runs <= runs)) || { echo "--fastnetmon-runs takes 0 to --runs" >&2; exit 2; }
for bin in bird birdc python3; do
  command -v "$bin" > /dev/null || { echo "$bin is required" >&2; exit 1; }
done
fastnetmon_bin=/usr/sbin/fastnetmon
if ((fnm_runs)) && [[ ! -x "$fastnetmon_bin" ]]; then
  echo "fastnetmon missing (apt-get install fastnetmon), or --fastnetmon-runs 0" >&2
  exit 1
fi

cargo build --release -q -p rampart
rampart=$PWD/target/release/rampart
work=$(mktemp -d /tmp/rampart-bgp-onset.XXXXXX)
pids=()
cleanup() {
  # The daemon, started by the Python part, and every process started here, by PID.
  [[ -f "$work/extra.pids" ]] && pids+=($(cat "$work/extra.pids"))
  for pid in "${pids[@]}"; do kill "$pid" 2> /dev/null || true; done
  sleep 0.3
  for pid in "${pids[@]}"; do kill -9 "$pid" 2> /dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
free_port() {
  python3 -c "import socket; s=socket.socket(socket.AF_INET, socket.SOCK_${1:-STREAM}); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])"
}
threshold_pps=20000

bgp_port=$(free_port)
cat > "$work/bird.conf" << CONF
router id 192.0.2.254;
protocol device {}
flow4 table flowtab4;
protocol bgp rampart {
  local 127.0.0.1 port $bgp_port as 64513;
  neighbor 127.0.0.1 as 64512;
  multihop; passive on; hold time 30; error wait time 1, 5;
  flow4 { table flowtab4; import all; export none; };
}
CONF
bird -c "$work/bird.conf" -s "$work/bird.ctl" -P "$work/bird.pid" -f 2> "$work/bird.log" &
pids+=($!)
for _ in $(seq 100); do birdc -s "$work/bird.ctl" show status > /dev/null 2>&1 && break; sleep 0.05; done

cat > "$work/rampart.toml" << CONF
protected = ["198.51.100.0/24", "2001:db8:100::/48"]

[thresholds]
pps = $threshold_pps
mbps = 1000

[mitigation]
dry_run = false

[mitigation.default]
ladder = ["discard"]
hold_secs = 5

[bgp]
local_as = 64512
router_id = "192.0.2.1"

[[bgp.peers]]
name = "bird"
address = "127.0.0.1"
port = $bgp_port
peer_as = 64513
hold_time = 30
CONF

fport=""
if ((fnm_runs)); then
  fport=$(free_port DGRAM)
  printf '198.51.100.0/24\n2001:db8:100::/48\n' > "$work/networks_list"
  : > "$work/networks_whitelist"
  # fastnetmon 1.2.4 calls this with: ip, direction, pps, action; details on stdin (read them).
  printf '%s\n' '#!/bin/sh' 'now=$(date +%s.%N)' 'cat > /dev/null' \
    'echo "$now $1 $2 $3 $4" >> "$(dirname "$0")/bans.log"' > "$work/notify.sh"
  chmod +x "$work/notify.sh"
  : > "$work/bans.log"
  # The same settings as bench/detection.sh: package defaults (average_calculation_time 5 s).
  cat > "$work/fastnetmon.conf" << CONF
disable_usage_report = on
logging_level = info
logging_local_syslog_logging = off
logging_remote_syslog_logging = off
enable_ban = on
enable_ban_ipv6 = on
process_incoming_traffic = on
process_outgoing_traffic = on
networks_list_path = $work/networks_list
white_list_path = $work/networks_whitelist
notify_script_path = $work/notify.sh
notify_script_pass_details = on
check_period = 1
ban_for_pps = on
ban_for_bandwidth = on
ban_for_flows = off
threshold_pps = $threshold_pps
threshold_mbps = 1000
mirror_afpacket = off
mirror_afxdp = off
mirror_netmap = off
pcap = off
netflow = off
sflow = on
sflow_port = $fport
sflow_host = 127.0.0.1
enable_api = off
prometheus = off
pid_path = $work/fastnetmon.pid
cli_stats_file_path = $work/fastnetmon.dat
cli_stats_ipv6_file_path = $work/fastnetmon_ipv6.dat
CONF
  grep -qx 'disable_usage_report = on' "$work/fastnetmon.conf" # never start it without this
  "$fastnetmon_bin" --configuration_file "$work/fastnetmon.conf" --log_file "$work/fastnetmon.log" \
    > "$work/fastnetmon.out" 2>&1 &
  pids+=($!)
fi

# The runs: Python starts `rampart run` (its stdout stamped line by line) and times each replay.
python3 - "$rampart" "$work" "$runs" "$fnm_runs" "$fport" << 'PY'
import json, os, socket, statistics, subprocess, sys, threading, time
rampart, work, runs, fnm_runs, fport = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
ctl = f"{work}/bird.ctl"
daemon = subprocess.Popen(
    [rampart, "run", "--config", f"{work}/rampart.toml", "--data-dir", f"{work}/data",
     "--sflow", "127.0.0.1:0", "--metrics", "127.0.0.1:0"],
    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
with open(f"{work}/extra.pids", "w") as f:
    f.write(f"{daemon.pid}\n")
sflow = None
deadline = time.time() + 30
while sflow is None and time.time() < deadline:
    line = daemon.stderr.readline()
    if line.startswith("listening for sFlow on "):
        sflow = line.split()[-1]
if sflow is None:
    sys.exit("rampart run did not start")
def keep_stderr():
    with open(f"{work}/rampart.err", "w") as log:
        for line in daemon.stderr:
            log.write(line)
            log.flush()
threading.Thread(target=keep_stderr, daemon=True).start()
onsets = {}  # target -> wall time of its onset line
def read_stdout():
    for line in daemon.stdout:
        t = time.time()
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") == "onset":
            onsets.setdefault(event["attack"]["target"].get("host"), t)
threading.Thread(target=read_stdout, daemon=True).start()

def flow_table():
    out = subprocess.run(["birdc", "-s", ctl, "show", "route", "table", "flowtab4"],
                         capture_output=True, text=True, timeout=5)
    return out.stdout
def established():
    out = subprocess.run(["birdc", "-s", ctl, "show", "protocols", "rampart"], capture_output=True, text=True)
    return "Established" in out.stdout
deadline = time.time() + 60  # the speaker's reconnect backoff, if BIRD was not listening yet
while not established():
    if time.time() > deadline:
        daemon.kill()
        print(open(f"{work}/rampart.err").read()[-3000:], subprocess.run(["birdc", "-s", ctl, "show", "protocols", "all", "rampart"], capture_output=True, text=True).stdout, file=sys.stderr)
        sys.exit("BIRD never established the session with rampart run")
    time.sleep(0.1)

def fnm_ban(target):
    try:
        for line in open(f"{work}/bans.log"):
            parts = line.split()
            if len(parts) >= 5 and parts[1] == target and parts[4] == "ban":
                return float(parts[0])
    except FileNotFoundError:
        pass
    return None

rows = []
try:
    for i in range(runs):
        target = f"198.51.100.{20 + i}"
        with_fnm = i < fnm_runs
        pcap = f"{work}/run.pcap"
        duration, attack = ("16", "12") if with_fnm else ("4", "3")
        subprocess.run([rampart, "generate", "udp_flood", "--seed", str(11 + i), "--duration", duration,
                        "--attack-duration", attack, "--target", target, "-o", pcap],
                       check=True, stderr=subprocess.DEVNULL)
        truth = json.load(open(pcap + ".truth.json"))
        offset = truth["attacks"][0]["start"] - truth["capture"]["first_packet"]
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe.bind(("127.0.0.1", 0))
        probe.settimeout(10)
        collectors = ["--sflow", sflow, "--sflow", f"127.0.0.1:{probe.getsockname()[1]}"]
        if with_fnm:
            collectors += ["--sflow", f"127.0.0.1:{fport}"]
        replay = subprocess.Popen([rampart, "replay", pcap, *collectors, "--speed", "1", "--max-seconds", "20"],
                                  stderr=subprocess.DEVNULL)
        probe.recv(65536)
        attack_wall = time.time() + offset  # the first datagram carries the capture's first packet
        route_wall, fnm_wall = None, None
        deadline = time.time() + 20
        while time.time() < deadline:
            if route_wall is None and f"dst {target}/32;" in flow_table():
                route_wall = time.time()
            if with_fnm and fnm_wall is None:
                fnm_wall = fnm_ban(target)
            if route_wall is not None and (not with_fnm or fnm_wall is not None):
                break
            time.sleep(0.005)
        if replay.poll() is None:
            replay.terminate()
        replay.wait()
        probe.close()  # unread since the first datagram: the kernel dropped the rest
        os.remove(pcap)
        os.remove(pcap + ".truth.json")
        onset = onsets.get(target)
        delay = lambda t: None if t is None else t - attack_wall
        rows.append({"target": target, "route": delay(route_wall), "onset": delay(onset),
                     "fastnetmon": delay(fnm_wall) if with_fnm else None, "with_fnm": with_fnm})
        r = rows[-1]
        fmt = lambda x: "—" if x is None else f"{x:.3f}"
        print(f"run {i + 1}: {target} onset {fmt(r['onset'])} s, route in BIRD {fmt(r['route'])} s"
              + (f", fastnetmon ban {fmt(r['fastnetmon'])} s" if with_fnm else ""), file=sys.stderr)
        time.sleep(0.5)
finally:
    daemon.terminate()
    try:
        daemon.wait(timeout=10)
    except subprocess.TimeoutExpired:
        daemon.kill()

def pct(values, p):
    values = sorted(values)
    if not values:
        return None
    k = (len(values) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)
routes = [r["route"] for r in rows if r["route"] is not None]
onset = [r["onset"] for r in rows if r["onset"] is not None]
speaker = [r["route"] - r["onset"] for r in rows if r["route"] is not None and r["onset"] is not None]
fnm = [r["fastnetmon"] for r in rows if r["fastnetmon"] is not None]
fmt = lambda x: "—" if x is None else f"{x:.2f} s"
stamp = time.strftime("%Y-%m-%dT%H%M%SZ", time.gmtime())
bird_version = subprocess.run(["bird", "--version"], capture_output=True, text=True).stderr.split()[-1]
lines = [
    f"### Onset to route in BIRD, {stamp} ({os.cpu_count()} cores, shared; load average "
    f"{os.getloadavg()[0]:.1f} at the end)",
    "",
    f"{len(rows)} runs of udp_flood (50 kpps over 5 kpps benign) replayed as sFlow 1:1 to `rampart run` "
    f"(threshold 20000 pps, ladder discard, [bgp] to BIRD {bird_version} on loopback), a fresh target each run; "
    "`birdc show route table flowtab4` polled every 5 ms.",
    "",
    "| from the attack's first packet to | runs | p50 | p99 | min | max |",
    "|---|---:|---:|---:|---:|---:|",
    f"| Rampart's onset line (detection) | {len(onset)} | {fmt(pct(onset, 50))} | {fmt(pct(onset, 99))} | "
    f"{fmt(min(onset, default=None))} | {fmt(max(onset, default=None))} |",
    f"| the FlowSpec rule in BIRD's table | {len(routes)} | {fmt(pct(routes, 50))} | {fmt(pct(routes, 99))} | "
    f"{fmt(min(routes, default=None))} | {fmt(max(routes, default=None))} |",
    f"| (onset line to rule in BIRD) | {len(speaker)} | {fmt(pct(speaker, 50))} | {fmt(pct(speaker, 99))} | "
    f"{fmt(min(speaker, default=None))} | {fmt(max(speaker, default=None))} |",
]
if fnm_runs:
    lines.append(f"| fastnetmon 1.2.4's ban notification (defaults, same replay, first {fnm_runs} runs: 16 s capture, attack 12 s) | "
                 f"{len(fnm)} of {fnm_runs} | {fmt(pct(fnm, 50))} | — | {fmt(min(fnm, default=None))} | {fmt(max(fnm, default=None))} |")
missing = [r["target"] for r in rows if r["route"] is None]
if missing:
    lines += ["", f"No rule in BIRD within 20 s for: {', '.join(missing)}."]
lines += ["", "Anchor measured earlier (README, detection): fastnetmon's ban notification 7.9–8.9 s after the first attack packet."]
text = "\n".join(lines) + "\n"
print(text)
os.makedirs("bench/results", exist_ok=True)
with open(f"bench/results/bgp-onset-{stamp}.md", "w") as f:
    f.write(text)
PY
