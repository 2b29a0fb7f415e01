#!/usr/bin/env bash
# Capture decode benchmark: a pcap read from the page cache and turned into per-destination
# counters, by `rampart inspect` and, on the same file in the same run, by softflowd (a flow
# meter over pcap: parse + per-flow hashing, the closest anchor doing the same job) and tshark
# (field extraction, the reference dissector; run on the first 1M packets only, it is slow).
#
# Rates are packets per CPU-second (user + system) of the measured process: per core.
# Prints a Markdown table and writes it to bench/results/decode-<date>.md.
#
# Usage: bench/decode.sh [--packets-millions 9] [--no-softflowd] [--no-tshark]
# Traffic is never sent anywhere except softflowd's export to a local socket on 127.0.0.1 that
# this script opens and discards.
set -euo pipefail
cd "$(dirname "$0")/.."

millions=9
softflowd=1
tshark=1
while (($#)); do
  case "$1" in
    --packets-millions) millions="$2"; shift 2 ;;
    --no-softflowd) softflowd=0; shift ;;
    --no-tshark) tshark=0; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ "$millions" =~ ^[0-9]+$ ]] && ((millions >= 1 && millions <= 100)) || { echo "--packets-millions: 1..100" >&2; exit 2; }

cargo build --release -q -p rampart
rampart=target/release/rampart
work=$(mktemp -d /tmp/rampart-decode-bench.XXXXXX)
cleanup() { [[ -n "${sink_pid:-}" ]] && kill "$sink_pid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

# A SYN flood: small (54-60 byte) frames, random spoofed sources, like the worst case for a decoder.
capture="$work/syn.pcap"
pps=$((millions * 1000000 / 3))
"$rampart" generate syn_flood --seed 3 --duration 4 --attack-pps "$pps" --background-pps 1000 -o "$capture" 2>/dev/null
packets=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['totals']['packets'])" "$capture.truth.json")
size=$(stat -c %s "$capture")
cat "$capture" > /dev/null # into the page cache

# cpu_seconds COMMAND...: runs it, prints user+system CPU seconds.
cpu_seconds() {
  /usr/bin/time -f "%U %S" -o "$work/time" "$@" > "$work/out" 2> "$work/err"
  awk '{ printf "%.3f", $1 + $2 }' "$work/time"
}
rate() { python3 -c "import sys; print(f'{int(sys.argv[1]) / max(float(sys.argv[2]), 1e-9) / 1e6:.2f}')" "$1" "$2"; }

rows=()
best=""
for attempt in 1 2 3; do
  secs=$(cpu_seconds "$rampart" inspect "$capture" --json)
  if [[ -z "$best" ]] || python3 -c "import sys; sys.exit(not float(sys.argv[1]) < float(sys.argv[2]))" "$secs" "$best"; then best=$secs; fi
done
python3 - "$work/out" "$packets" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
assert report["packets"] == int(sys.argv[2]), "inspect disagrees with the ground truth"
PY
rampart_rate=$(rate "$packets" "$best")
rows+=("| rampart inspect (decode + per-destination counters) | $packets | $best | **$rampart_rate** | 1.0x |")

if ((softflowd)); then
  command -v softflowd >/dev/null || test -x /usr/sbin/softflowd || { echo "softflowd missing (apt-get install softflowd)" >&2; exit 1; }
  port=$(python3 -c "import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])")
  # A socket that receives and discards softflowd's export, so sends never fail.
  python3 -c "
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('127.0.0.1', int(sys.argv[1]))); s.settimeout(1)
end = time.time() + 600
while time.time() < end:
    try: s.recv(65535)
    except socket.timeout: pass
" "$port" &
  sink_pid=$!
  secs=$(cpu_seconds /usr/sbin/softflowd -r "$capture" -n "127.0.0.1:$port" -v 9 -d -a)
  r=$(rate "$packets" "$secs")
  rows+=("| softflowd 1.1.0 -r (decode + flow table, NetFlow v9 export) | $packets | $secs | $r | $(python3 -c "print(f'{$rampart_rate / max($r, 1e-9):.1f}x')") |")
  kill "$sink_pid" 2>/dev/null || true
  sink_pid=""
fi

if ((tshark)); then
  command -v tshark >/dev/null || { echo "tshark missing (apt-get install tshark)" >&2; exit 1; }
  n=$((packets < 1000000 ? packets : 1000000))
  secs=$(cpu_seconds tshark -n -r "$capture" -c "$n" -T fields -e ip.dst -e ip.len)
  r=$(rate "$n" "$secs")
  rows+=("| tshark 4.0 -T fields ip.dst ip.len (first $n packets) | $n | $secs | $r | $(python3 -c "print(f'{$rampart_rate / max($r, 1e-9):.0f}x')") |")
fi

stamp=$(date -u +%Y-%m-%dT%H%M%SZ)
mkdir -p bench/results
{
  echo "# Capture decode benchmark, $stamp"
  echo
  echo "SYN flood capture from \`rampart generate\`: $packets packets, $((size / 1000000)) MB, 54-60 byte frames, read from the page cache."
  echo "CPU s = user + system CPU seconds of the process (best of 3 for rampart); Mpps/core = packets per CPU-second."
  echo "- machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "- rampart: $(git rev-parse --short HEAD)"
  echo
  echo "| program | packets | CPU s | Mpps/core | rampart is |"
  echo "|---|---:|---:|---:|---:|"
  printf '%s\n' "${rows[@]}"
} | tee "bench/results/decode-$stamp.md"
