#!/usr/bin/env bash
# Runs the production-like fault run (tests/faults) for as long as asked,
# alone, in release mode, and prints its summary: requests, errors by kind
# inside and outside the fault windows, the slowest answer outside them,
# resident memory at the first fault and at the end.
#
#   bench/soak.sh            # 30 minutes
#   bench/soak.sh 600        # 10 minutes
#
# Needs redis-server (./dev.sh deps installs it).
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-1800}"
echo "soak: ${secs} s on $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
TAGCACHE_FAULT_SECS="$secs" cargo test --release --test faults -- --nocapture --test-threads=1 2>&1 |
  grep -E '^(fault run|errors inside|RSS|test result)|panicked|broken|took|version|got'
