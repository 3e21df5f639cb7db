#!/usr/bin/env bash
# Runs every fuzz target for a bounded time and prints each one's exec count.
#
#   fuzz/run.sh [SECONDS] [TARGET...]     # default: 600 seconds, every target
#   JOBS=2 fuzz/run.sh 600                # two targets at a time (one core each)
#
# Works on a stable toolchain: RUSTC_BOOTSTRAP lets cargo-fuzz pass its
# nightly-only flags, and --sanitizer none avoids needing AddressSanitizer
# (safe Rust does not need it to find panics). A crash stops that target and
# leaves its input in fuzz/artifacts/TARGET/; the script then exits non-zero.
set -euo pipefail
cd "$(dirname "$0")"

seconds="${1:-600}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(config_load request_key purge_body jwt)
fi
jobs="${JOBS:-1}"

if ! command -v cargo-fuzz >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1
cargo fuzz build --sanitizer none -O

mkdir -p logs
run_one() {
  local t="$1"
  mkdir -p "corpus/$t"
  # The writable corpus first, then the committed seeds.
  if cargo fuzz run "$t" --sanitizer none -O "corpus/$t" "seeds/$t" -- \
      -max_total_time="$seconds" -rss_limit_mb=4096 -timeout=10 -print_final_stats=1 \
      >"logs/$t.log" 2>&1; then
    echo "$t: ok, $(grep -o 'Done [0-9]* runs in [0-9]* second(s)' "logs/$t.log" | tail -1)"
  else
    echo "$t: FAILED, see fuzz/logs/$t.log and fuzz/artifacts/$t/"
    return 1
  fi
}

status=0
running=0
for t in "${targets[@]}"; do
  run_one "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then
    wait -n || status=1
    running=$((running - 1))
  fi
done
while [ "$running" -gt 0 ]; do
  wait -n || status=1
  running=$((running - 1))
done
exit "$status"
