#!/usr/bin/env bash
# Interface capture benchmark: rampart's AF_PACKET TPACKET_V3 rings against libpcap, on one end
# of a veth pair, fed a bounded UDP blast from a namespace at the other end.
#
# The script creates two network namespaces (rampart-afpb-<pid>-a/-b) joined by a veth pair with
# documentation addresses inside them only (198.51.100.1 and .10), and removes them on exit.
# For each offered rate it runs, in the capturing namespace, one capturer at a time:
#   afpacket   rampart collect --interface (AF_PACKET rings, --threads rings in a fanout group)
#   libpcap    rampart collect --interface --bpf udp (the live-capture build: libpcap 1.10, the
#              same decoding and summary after it; libpcap needs a filter to be chosen here)
#   tcpdump    tcpdump -w /dev/null udp, at its defaults and at its best (-s 256 -B 65536),
#              only if tcpdump is installed
# while crates/rampart/examples/veth_blast.rs sends rate × seconds packets from the other
# namespace (raw socket, 256 sources × 64 ports). Reported per run: packets sent, packets of
# the blast captured, kernel ring drops, loss, CPU-seconds (user + system) of the capturing
# process, and captured packets per CPU-second of it (per core). The kernel's share (the
# packet socket's receive path runs in softirq, mostly on the sender's core for a veth) is not
# in the capturer's CPU; it is the same for all capturers.
#
# Prints a Markdown table and writes it to bench/results/afpacket-<date>.md.
#
# Usage: bench/afpacket.sh [--rates "100000 200000 400000 0"] [--seconds 4] [--threads 1]
#          [--senders 1]
#   a rate of 0 means: as fast as the senders go; --senders N runs N blasts at once (each
#   rate/N), for more than one sender core can offer. Needs root, iproute2, /usr/bin/time, jq.
set -euo pipefail

rates="100000 200000 400000 0"
seconds=4
threads=1
senders=1
while (($#)); do
  case "$1" in
    --rates) rates="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --senders) senders="$2"; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ "$seconds" =~ ^[0-9]+$ ]] && ((seconds >= 1 && seconds <= 30)) || { echo "--seconds: 1..30" >&2; exit 2; }
[[ "$threads" =~ ^[0-9]+$ ]] && ((threads >= 1 && threads <= 16)) || { echo "--threads: 1..16" >&2; exit 2; }
[[ "$senders" =~ ^[0-9]+$ ]] && ((senders >= 1 && senders <= 8)) || { echo "--senders: 1..8" >&2; exit 2; }
for rate in $rates; do
  [[ "$rate" =~ ^[0-9]+$ ]] && ((rate <= 5000000)) || { echo "bad rate $rate (0..5000000)" >&2; exit 2; }
done
[ "$(id -u)" -eq 0 ] || { echo "needs root (network namespaces, packet sockets)" >&2; exit 1; }
for tool in ip jq /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "needs $tool" >&2; exit 1; }
done

cd "$(dirname "$0")/.."
cargo build --release -q -p rampart --features live-capture --bin rampart --example veth_blast
bin=target/release/rampart
blast=target/release/examples/veth_blast

a="rampart-afpb-$$-a"
b="rampart-afpb-$$-b"
va="rafpb$$a"
vb="rafpb$$b"
scratch=$(mktemp -d)
cleanup() {
  ip netns del "$a" 2>/dev/null || true
  ip netns del "$b" 2>/dev/null || true
  rm -rf "$scratch"
}
trap cleanup EXIT
ip netns add "$a"
ip netns add "$b"
ip link add "$va" netns "$a" type veth peer name "$vb" netns "$b"
ip -n "$a" address add 198.51.100.1/24 dev "$va"
ip -n "$b" address add 198.51.100.10/24 dev "$vb"
for spec in "$a $va" "$b $vb" "$a lo" "$b lo"; do
  set -- $spec
  ip -n "$1" link set "$2" up
done
# Resolve the neighbour once, so no blast packet waits for ARP.
ip netns exec "$a" ping -c 1 -W 2 198.51.100.10 >/dev/null 2>&1 || true

rows=()
# run NAME RATE: one capturer during one blast.
run() {
  local name=$1 rate=$2 count pps_arg wait_secs
  if ((rate == 0)); then count=$((2000000 * seconds)); pps_arg=0; else count=$((rate * seconds)); pps_arg=$rate; fi
  wait_secs=$((seconds + 3))
  local out="$scratch/$name-$rate"
  case "$name" in
    afpacket) ip netns exec "$b" /usr/bin/time -f "%U %S" -o "$out.time" \
                "$bin" collect --interface "$vb" --capture-threads "$threads" --duration "$wait_secs" --json \
                >"$out.json" 2>"$out.err" & ;;
    libpcap)  ip netns exec "$b" /usr/bin/time -f "%U %S" -o "$out.time" \
                "$bin" collect --interface "$vb" --bpf udp --duration "$wait_secs" --json \
                >"$out.json" 2>"$out.err" & ;;
    # tcpdump at its defaults (2 MiB buffer, whole frames), and at its best (64 MiB, 256 bytes,
    # immediate delivery off: libpcap's own TPACKET_V3 ring).
    tcpdump-default) ip netns exec "$b" /usr/bin/time -f "%U %S" -o "$out.time" \
                timeout -s INT "$wait_secs" tcpdump -i "$vb" -n -w /dev/null udp \
                >"$out.json" 2>"$out.err" & ;;
    tcpdump-best) ip netns exec "$b" /usr/bin/time -f "%U %S" -o "$out.time" \
                timeout -s INT "$wait_secs" tcpdump -i "$vb" -n -s 256 -B 65536 -w /dev/null udp \
                >"$out.json" 2>"$out.err" & ;;
  esac
  local capturer=$!
  for _ in $(seq 100); do
    grep -q "capturing on\|listening on" "$out.err" 2>/dev/null && break
    sleep 0.1
  done
  sleep 0.5
  local blasts=()
  for i in $(seq "$senders"); do
    ip netns exec "$a" "$blast" --to 198.51.100.10 --count $((count / senders)) --pps $((pps_arg / senders)) \
      --max-seconds "$seconds" >"$out.blast.$i" &
    blasts+=($!)
  done
  wait "${blasts[@]}"
  wait "$capturer" || true
  local sent offered captured drops cpu
  sent=$(cat "$out".blast.* | jq -s 'map(.sent) | add')
  offered=$(cat "$out".blast.* | jq -s 'map(.pps) | add | floor')
  case "$name" in
    afpacket|libpcap)
      captured=$(jq '[.destinations[] | select(.ip == "198.51.100.10") | .packets] | add // 0' "$out.json")
      drops=$(jq '.decode.collectors[] | select(.protocol == "capture") | .socket_drops // 0' "$out.json") ;;
    tcpdump-*)
      captured=$(sed -n 's/^\([0-9]*\) packets captured.*/\1/p' "$out.err")
      drops=$(sed -n 's/^\([0-9]*\) packets dropped by kernel.*/\1/p' "$out.err") ;;
  esac
  cpu=$(tail -n 1 "$out.time" | awk '{printf "%.2f", $1 + $2}' 2>/dev/null || echo 0)
  local loss per_cpu
  loss=$(awk -v s="$sent" -v c="$captured" 'BEGIN { printf "%.2f", (s > 0 ? 100 * (s - c) / s : 0) }')
  per_cpu=$(awk -v c="$captured" -v t="$cpu" 'BEGIN { if (t > 0) printf "%.0f", c / t; else print "-" }')
  local label=$rate; ((rate == 0)) && label="max"
  rows+=("| $name | $label | $offered | $sent | $captured | $drops | $loss % | $cpu | $per_cpu |")
  echo "${rows[-1]}" >&2
}

capturers="afpacket libpcap"
command -v tcpdump >/dev/null && capturers="$capturers tcpdump-default tcpdump-best"
for rate in $rates; do
  for name in $capturers; do
    run "$name" "$rate"
  done
done

date_tag=$(date -u +%Y-%m-%dT%H%M%SZ)
mkdir -p bench/results
result="bench/results/afpacket-$date_tag.md"
{
  echo "# Interface capture: AF_PACKET rings vs libpcap ($date_tag)"
  echo
  echo "veth pair between two namespaces; blast: UDP 46-byte IP packets, 256 sources × 64 ports,"
  echo "$seconds s per run, $senders sender(s); afpacket with $threads capture thread(s); $(nproc) cores, $(uname -r)."
  echo "captured: packets of the blast the capturer decoded (tcpdump: written); ring drops: the"
  echo "kernel's PACKET_STATISTICS drops; CPU: user + system seconds of the capturing process."
  echo
  echo "| capturer | rate (pps offered) | achieved send pps | sent | captured | ring drops | loss | CPU s | packets per CPU-second |"
  echo "|---|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
} | tee "$result"
echo "written to $result" >&2
