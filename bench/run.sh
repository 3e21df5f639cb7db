#!/usr/bin/env bash
# Load benchmark: tagcache against nginx proxy_cache and Varnish, on loopback.
#
#   bench/run.sh            full run (about 8 minutes), writes bench/results/latest.md
#   WORKLOADS=hot,full SERVERS=tagcache,nginx bench/run.sh
#                           a subset: workloads hot,zipf,herd,purge,full,ceiling,l2;
#                           servers tagcache,nginx,varnish
#   WORKLOADS=twocore,pressure,latency bench/run.sh
#                           the workloads run only when named (5-7 minutes):
#                           twocore   every server on both cores (2 workers) with
#                                     wrk on the same two cores: a shared-core figure
#                           pressure  the same seeded trace over 10x the store's bytes
#                                     against 32 MiB each: hit ratio, byte hit ratio
#                           latency   fixed-rate open-loop load at 50 % and 90 % of
#                                     each server's peak: p50/p99/p99.9 without
#                                     coordinated omission (examples/bench_load.rs)
#   WORKLOADS=all bench/run.sh   all ten
#   python3 bench/record.py  after a run: merges its table (bench/results/
#                           latest.section.md) into docs/benchmarks.md's table
#                           for its processor (one table per processor seen)
#   bench/run.sh --smoke    tagcache alone, 5 s of workload (a); exit 0 if it served a HIT
#   SMOKE=1 bench/run.sh    same as --smoke
#
# Environment: see the header of bench/driver.py (DURATION, SERVERS, WORKLOADS,
# TAGCACHE_BIN, ORIGIN_BIN, LOAD_BIN, PRESSURE_*, LATENCY_RATES, ...). Method and
# numbers: docs/benchmarks.md.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
caller_pwd="$PWD"
cd "$root"

smoke=0
for a in "$@"; do
  case "$a" in
    --smoke) smoke=1 ;;
    -h|--help) sed -n '2,26p' "$here/$(basename "${BASH_SOURCE[0]}")"; exit 0 ;;
    *) echo "unknown argument: $a" >&2; exit 2 ;;
  esac
done
[[ "${SMOKE:-}" == "1" ]] && smoke=1

# Binaries: given, or built (release) only when missing.
abspath() { case "$1" in /*) printf '%s\n' "$1" ;; *) printf '%s\n' "$caller_pwd/$1" ;; esac; }
TAGCACHE_BIN="$(abspath "${TAGCACHE_BIN:-$root/target/release/tagcache}")"
ORIGIN_BIN="$(abspath "${ORIGIN_BIN:-$root/target/release/examples/bench_origin}")"
LOAD_BIN="$(abspath "${LOAD_BIN:-$root/target/release/examples/bench_load}")"
export TAGCACHE_BIN ORIGIN_BIN LOAD_BIN
need_tagcache=1
if [[ $smoke == 0 && -n "${SERVERS:-}" && ",${SERVERS}," != *,tagcache,* ]]; then need_tagcache=0; fi
if [[ $need_tagcache == 1 && ! -x "$TAGCACHE_BIN" ]]; then
  echo "[bench] building $TAGCACHE_BIN (cargo build --release)" >&2
  cargo build --release --bin tagcache >&2
fi
if [[ ! -x "$ORIGIN_BIN" ]]; then
  echo "[bench] building $ORIGIN_BIN (cargo build --release --example bench_origin)" >&2
  cargo build --release --example bench_origin >&2
fi

if [[ $smoke == 0 && ( ",${WORKLOADS:-}," == *,latency,* || ",${WORKLOADS:-}," == *,all,* ) && ! -x "$LOAD_BIN" ]]; then
  echo "[bench] building $LOAD_BIN (cargo build --release --example bench_load)" >&2
  cargo build --release --example bench_load >&2
fi

command -v python3 >/dev/null || { echo "python3 is required" >&2; exit 1; }
if [[ $smoke == 0 ]]; then
  for t in wrk nginx varnishd taskset; do
    command -v "$t" >/dev/null || { echo "missing $t (apt-get install -y wrk nginx-light varnish varnish-modules util-linux)" >&2; exit 1; }
  done
fi

BENCH_TMP="$(mktemp -d "${TMPDIR:-/tmp}/tagcache-bench.XXXXXX")"
chmod 755 "$BENCH_TMP"
export BENCH_TMP

cleanup() {
  local rc=$?
  # The driver stops its servers itself; this catches whatever it could not
  # (it was killed): every process group it started is listed in pgids.
  if [[ -f "$BENCH_TMP/pgids" ]]; then
    while read -r pg; do
      [[ -n "$pg" ]] && kill -KILL -- "-$pg" 2>/dev/null || true
    done <"$BENCH_TMP/pgids"
  fi
  if [[ -f "$BENCH_TMP/pgids-cachedirs" ]]; then
    while read -r d; do
      [[ -n "$d" && "$d" == */tagcache-bench-nginx-cache-* ]] && rm -rf -- "$d"
    done <"$BENCH_TMP/pgids-cachedirs"
  fi
  if [[ -n "${BENCH_KEEP_TMP:-}" ]]; then
    echo "[bench] scratch kept in $BENCH_TMP" >&2
  else
    rm -rf -- "$BENCH_TMP"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ $smoke == 1 ]]; then
  python3 "$here/driver.py" --smoke
else
  python3 "$here/driver.py"
fi
