#!/usr/bin/env bash
# The XDP SYN cookie guard end to end, in two network namespaces joined by a veth pair (XDP in
# generic mode on the server's end): three real TCP connects, then a bounded SYN flood (20,000
# SYNs from random ports, through a raw socket), then one more connect; prints how long each
# took, and the server's TcpExtSyncookies counters (Sent: cookies the stack sent itself, the one
# SYN a second per port the filter lets through; Recv: cookie ACKs the stack accepted).
# Needs root, python3, iproute2 and a rampart built with --features xdp (RAMPART_BIN=path, or
# target/debug/rampart). The server namespace gets net.ipv4.tcp_syncookies=2; the host's is
# not touched.
set -euo pipefail
cd "$(dirname "$0")/.."
RAMPART=${RAMPART_BIN:-$PWD/target/debug/rampart}
a=rp-syn-a-$$ b=rp-syn-b-$$ pin=/sys/fs/bpf/rp-syn-$$ dir=$(mktemp -d /tmp/rampart-syn-XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  ip netns exec "$b" sh -c "mount -t bpf bpf /sys/fs/bpf 2>/dev/null; rm -rf $pin" 2>/dev/null || true
  ip netns del "$a" 2>/dev/null || true
  ip netns del "$b" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
ip netns add "$a"
ip netns add "$b"
ip link add rpsyna$$ netns "$a" type veth peer name rpsynb$$ netns "$b"
ip -n "$a" addr add 192.0.2.1/24 dev rpsyna$$
ip -n "$b" addr add 192.0.2.2/24 dev rpsynb$$
for ns in "$a" "$b"; do ip -n "$ns" link set lo up; done
ip -n "$a" link set rpsyna$$ up
ip -n "$b" link set rpsynb$$ up
ip netns exec "$b" sysctl -q net.ipv4.tcp_syncookies=2
echo '[]' > "$dir/decisions.json"

# The server: accepts five connections (bounded at 60 s), answers each with "hi".
ip netns exec "$b" timeout 60 python3 -c "
import socket
s = socket.socket(); s.bind(('192.0.2.2', 8080)); s.listen(16); s.settimeout(60)
for _ in range(4):
    c, _ = s.accept(); c.sendall(b'hi'); c.close()
" &
pids+=($!)
# The filter, holding (exec: the PID stopped at the end is rampart's).
ip netns exec "$b" sh -c "mount -t bpf bpf /sys/fs/bpf 2>/dev/null; exec timeout 60 $RAMPART filter apply \
  --decisions $dir/decisions.json --interface rpsynb$$=generic --pin-dir $pin \
  --syn-guard 192.0.2.2=1,cookies --backend xdp --hold --interval 1" >"$dir/filter.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q "SYN guards" "$dir/filter.log" && break; sleep 0.2; done
grep -q "SYN guards" "$dir/filter.log" || { cat "$dir/filter.log"; echo "the filter did not start"; exit 1; }
grep "tcp_syncookies\|unavailable" "$dir/filter.log" && exit 1

ip netns exec "$a" timeout 30 python3 -c "
import random, socket, struct, time
def connect():
    t = time.time()
    c = socket.create_connection(('192.0.2.2', 8080), timeout=4); r = c.recv(10); c.close()
    assert r == b'hi', r
    return (time.time() - t) * 1000
print('3 connects: %s ms' % ', '.join('%.1f' % connect() for _ in range(3)))
raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
src, dst = socket.inet_aton('192.0.2.1'), socket.inet_aton('192.0.2.2')
def csum(b):
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b)); s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
t = time.time()
for _ in range(20000):
    h = struct.pack('!HHIIBBHHH', random.randint(20000, 60000), 8080, random.getrandbits(32), 0, 0x50, 0x02, 65535, 0, 0)
    h = h[:16] + struct.pack('!H', csum(src + dst + struct.pack('!BBH', 0, 6, len(h)) + h)) + h[18:]
    raw.sendto(h, ('192.0.2.2', 0))
print('SYN flood: 20000 SYNs in %.2f s' % (time.time() - t))
print('connect after the flood: %.1f ms' % connect())
"
ip netns exec "$b" nstat -az TcpExtSyncookiesSent TcpExtSyncookiesRecv TcpExtSyncookiesFailed TcpExtListenOverflows | tail -n +2
