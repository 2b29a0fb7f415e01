#!/usr/bin/env bash
# Challenge ladder benchmark: clearance cookies and proof-of-work proofs verified per second on
# one core (taskset core 0 when available), at the token level and through the whole
# `Challenger` call the proxy makes. Goal: at least 50,000 verifications a second a core.
# Anchor: Anubis's verifier saturated near 11,500 proofs a second in a public test (quoted, not
# run here: Anubis is a Go binary outside Debian).
#
# Prints the rates and writes them to bench/results/challenge-<date>.md.
# Usage: bench/challenge.sh
set -euo pipefail
cd "$(dirname "$0")/.."

stamp=$(date -u +%Y-%m-%dT%H%M%SZ)
out="bench/results/challenge-$stamp.md"
pin=()
if command -v taskset >/dev/null; then pin=(taskset -c 0); fi
cargo bench -p rampart-shield --bench challenge --no-run >/dev/null 2>&1
{
  echo "# Challenge verification, $stamp"
  echo
  echo "Machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at start; one core."
  echo
  echo '```'
  "${pin[@]}" cargo bench -p rampart-shield --bench challenge 2>/dev/null | grep -E '/s/core'
  echo '```'
  echo
  echo "Anchor (quoted): Anubis, about 11,500 proofs/s in a public test."
} | tee "$out"
