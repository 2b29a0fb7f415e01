#!/usr/bin/env bash
# The XDP filter and nftables fallback figures (README performance table): ns per packet with
# 1M IPv4 + 100k IPv6 prefixes, Rampart's lookup vs the kernel LPM trie in the same run, raw and
# net of a no-op XDP program's ns over the same frames (the TEST_RUN harness's own cost), hot
# (64 sources x 20,000 runs each) and over random traffic (100,000 distinct sources per family,
# one run each); the stall watch through two full reloads and the LPM trie's fill and free; map
# updates per second (full load, and deltas); nftables decisions per second vs `nft add element`
# one by one; then CrowdSec's firewall bouncer (Debian's crowdsec + crowdsec-firewall-bouncer)
# fed 10,000 decisions and a range, at its default 10 s poll and at 1 s, beside `rampart filter
# apply --backend nftables` with the same decisions.
# Needs root, clang, libbpf-dev, libelf-dev, zlib1g-dev, nftables and iproute2.
# FILTER_SKIP_CROWDSEC=1 skips the CrowdSec part, FILTER_ONLY_CROWDSEC=1 runs only it,
# FILTER_STALLS_ONLY=1 (with FILTER_SKIP_CROWDSEC=1) only the loads and the stall watch;
# FILTER_PROBE_MAPS=1 (with FILTER_SKIP_CROWDSEC=1) only creates and closes each source table
# alone, timed, under the stall watchers (whose gaps over 5 ms are listed with their end time);
# RAMPART_BIN=path uses that rampart instead of building a release one.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "${FILTER_ONLY_CROWDSEC:-0}" = 1 ] || cargo bench -p rampart-filter --features xdp --bench filter "$@"
[ "${FILTER_SKIP_CROWDSEC:-0}" = 1 ] && exit 0

echo
echo "== CrowdSec firewall bouncer vs rampart filter apply (nftables), 10,000 decisions + one /24 range"
# Installed without starting or enabling the services (policy-rc.d 101), and without the online
# registration (a non-empty CAPI credentials file tells the package's postinst not to).
if ! command -v crowdsec-firewall-bouncer >/dev/null || ! command -v crowdsec >/dev/null; then
  mkdir -p /etc/crowdsec
  [ -s /etc/crowdsec/online_api_credentials.yaml ] ||
    echo "# CAPI registration disabled for the benchmark" > /etc/crowdsec/online_api_credentials.yaml
  policy=/usr/sbin/policy-rc.d
  had_policy=0
  [ -e "$policy" ] && had_policy=1
  [ "$had_policy" = 1 ] || { printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends crowdsec crowdsec-firewall-bouncer >/dev/null
  [ "$had_policy" = 1 ] || rm -f "$policy"
  for unit in crowdsec crowdsec-firewall-bouncer; do
    systemctl disable "$unit" >/dev/null 2>&1 || rm -f "/etc/systemd/system/multi-user.target.wants/$unit.service"
  done
fi
if [ -n "${RAMPART_BIN:-}" ]; then
  RAMPART=$RAMPART_BIN
else
  cargo build --release -q -p rampart
  RAMPART=$PWD/target/release/rampart
fi

dir=$(mktemp -d /tmp/rampart-bench-cs-XXXXXX)
ns=rp-bench-cs-$$
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
ip netns add "$ns"
ip -n "$ns" link set lo up
in_ns() { ip netns exec "$ns" "$@"; }
# A free port (inside the namespace every port is free; the LAPI listens on its loopback).
port=18080

# The decisions: 10,000 single addresses and one /24 (both ranges are documentation or private
# data, inside the namespace only).
python3 - "$dir" <<'PY'
import json, sys, time
d = sys.argv[1]
hosts = ["10.%d.%d.%d" % (i >> 16 & 255, i >> 8 & 255, i & 255) for i in range(1, 10001)]
cs = [{"duration": "4h", "scope": "ip", "type": "ban", "value": h, "reason": "bench", "origin": "bench"} for h in hosts]
cs.append({"duration": "4h", "scope": "range", "type": "ban", "value": "198.51.100.0/24", "reason": "bench-range", "origin": "bench"})
json.dump(cs, open(d + "/crowdsec.json", "w"))
now = time.time()
scopes = [{"address": h} for h in hosts] + [{"prefix": "198.51.100.0/24"}]
rp = [{"id": i + 1, "scope": s, "action": "discard", "origin": {"operator": {"name": "bench"}},
       "created": now - 1, "expires": now + 4 * 3600, "reason": "bench"} for i, s in enumerate(scopes)]
json.dump(rp, open(d + "/rampart.json", "w"))
PY

# Rampart: one process, one transaction, read back.
start=$(date +%s.%N)
in_ns "$RAMPART" filter apply --backend nftables --decisions "$dir/rampart.json" >/dev/null
end=$(date +%s.%N)
rampart_secs=$(echo "$end - $start" | bc)
rampart_range=$(in_ns nft list set inet rampart src4 | grep -o '198\.51\.100\.0[/0-9]*' | head -1)
in_ns nft delete table inet rampart

# A LAPI of its own for each run (its database in a fresh directory), stopped with the run.
cscli() { in_ns cscli -c "$lapi/config.yaml" "$@"; }
start_lapi() {
  lapi=$dir/lapi-$1
  mkdir -p "$lapi/etc" "$lapi/data" "$lapi/hub" "$lapi/log"
  cp /etc/crowdsec/profiles.yaml /etc/crowdsec/simulation.yaml "$lapi/etc/"
  touch "$lapi/etc/local_api_credentials.yaml"
  cat > "$lapi/config.yaml" <<YAML
common: {daemonize: false, log_media: file, log_level: error, log_dir: $lapi/log/, working_dir: .}
config_paths:
  config_dir: $lapi/etc/
  data_dir: $lapi/data/
  simulation_path: $lapi/etc/simulation.yaml
  hub_dir: $lapi/hub/
  index_path: $lapi/hub/.index.json
  notification_dir: $lapi/etc/notifications/
  plugin_dir: /usr/lib/crowdsec/plugins/
db_config: {log_level: error, type: sqlite, db_path: $lapi/data/crowdsec.db, use_wal: true}
api:
  client: {credentials_path: $lapi/etc/local_api_credentials.yaml}
  server: {log_level: error, listen_uri: "127.0.0.1:$port", profiles_path: $lapi/etc/profiles.yaml, trusted_ips: [127.0.0.1]}
prometheus: {enabled: false}
YAML
  cscli machines add bench --password "$(head -c 24 /dev/urandom | base64 | tr -dc a-zA-Z0-9)" \
  -f "$lapi/etc/local_api_credentials.yaml" --force >/dev/null 2>&1
  # Started by `ip netns exec` directly (not through a function, whose subshell would take the
  # PID): it execs the program, so $! is the process to stop.
  ip netns exec "$ns" crowdsec -c "$lapi/config.yaml" -no-cs >"$lapi/log/lapi.out" 2>&1 &
  lapi_pid=$!
  pids+=("$lapi_pid")
  for _ in $(seq 50); do cscli bouncers list >/dev/null 2>&1 && break; sleep 0.2; done
}

count() {
  in_ns nft -j list set ip crowdsec crowdsec-blacklists 2>/dev/null |
    python3 -c "import json,sys; d=json.load(sys.stdin); print(sum(len(x['set'].get('elem',[])) for x in d['nftables'] if 'set' in x))" 2>/dev/null ||
    echo 0
}

# One run: a bouncer polling every $1, the decisions imported once it runs; seconds from the
# start of the import until the set holds all 10,001 (bounded at 60 s).
run() {
  local frequency=$1 key bouncer start end import_end n deadline
  start_lapi "$frequency"
  key=$(cscli bouncers add "bench-$frequency" -o raw 2>/dev/null | tail -1)
  cat > "$lapi/bouncer-$frequency.yaml" <<YAML
mode: nftables
update_frequency: $frequency
daemonize: false
log_mode: file
log_dir: $lapi/log/
log_level: error
api_url: http://127.0.0.1:$port/
api_key: $key
disable_ipv6: true
deny_action: DROP
supported_decisions_types: [ban]
nftables:
  ipv4: {enabled: true, set-only: false, table: crowdsec, chain: crowdsec-chain}
  ipv6: {enabled: false, set-only: false, table: crowdsec6, chain: crowdsec6-chain}
YAML
  ip netns exec "$ns" crowdsec-firewall-bouncer -c "$lapi/bouncer-$frequency.yaml" >"$lapi/log/bouncer-$frequency.out" 2>&1 &
  bouncer=$!
  pids+=("$bouncer")
  for _ in $(seq 50); do in_ns nft list table ip crowdsec >/dev/null 2>&1 && break; sleep 0.2; done
  sleep 1
  start=$(date +%s.%N)
  cscli decisions import -i "$dir/crowdsec.json" >/dev/null 2>&1
  import_end=$(date +%s.%N)
  n=0
  deadline=$(($(date +%s) + 60))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    n=$(count)
    [ "$n" -ge 10001 ] && break
    sleep 0.2
  done
  end=$(date +%s.%N)
  range=$(in_ns nft list set ip crowdsec crowdsec-blacklists | grep -o '198\.51\.100\.0[/0-9]*' | head -1)
  printf 'crowdsec-firewall-bouncer, update_frequency %s: %s of 10001 elements in nftables %.2f s after the import began (the import itself %.2f s); the /24 range became %s\n' \
    "$frequency" "$n" "$(echo "$end - $start" | bc)" "$(echo "$import_end - $start" | bc)" "${range:-nothing}"
  kill "$bouncer" "$lapi_pid"
  wait "$bouncer" "$lapi_pid" 2>/dev/null || true
  in_ns nft delete table ip crowdsec 2>/dev/null || true
}
run 10s
run 1s
printf 'rampart filter apply --backend nftables: 10001 decisions in nftables in %.2f s (one process: read, plan, one transaction, read back); the /24 range stayed %s\n' \
  "$rampart_secs" "${rampart_range:-nothing}"
