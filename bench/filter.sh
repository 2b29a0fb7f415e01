#!/usr/bin/env bash
# The XDP filter and nftables fallback figures (README performance table): ns per packet with
# 1M IPv4 + 100k IPv6 prefixes, Rampart's lookup vs the kernel LPM trie in the same run; map
# updates per second; nftables decisions per second vs `nft add element` one by one.
# Needs root, clang, libbpf-dev, libelf-dev, zlib1g-dev, nftables and iproute2.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo bench -p rampart-filter --features xdp --bench filter "$@"
