#!/usr/bin/env bash
# User-space instructions per hot-key memory hit, counted by callgrind; with
# L2=1, per hot-key Redis (L2) hit with the memory tier off, as workload (e)
# of bench/run.sh configures it.
#
# Throughput on a shared VM moves 10-25% between runs; an instruction count
# does not (two runs of one binary agree within ~1%). This is how each
# hot-path change in docs/benchmarks.md ("Optimizations, each measured") is
# compared with the one before. Kernel work (about half of a hit's CPU on
# loopback) is not counted.
#
#   bench/instructions.sh [BIN] [N]    default: target/release/tagcache, 3000
#   L2=1 bench/instructions.sh [BIN] [N]
#   CG_OUT=cg.out TOP=30 bench/instructions.sh   keeps the profile, lists the top functions
#   SCOPE=request ...                  only the per-request future (see below)
#
# Needs valgrind and python3 (and redis-server for L2=1). Uses
# bench/tagcache.yaml (port 18080, origin on 18000, Redis on 16379), so it
# must not run next to bench/run.sh. Only tagcache's instructions are
# counted: Redis's own work, like the kernel's, is not.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$(realpath "${1:-$root/target/release/tagcache}")"
n="${2:-3000}"
origin_bin="${ORIGIN_BIN:-$root/target/release/examples/bench_origin}"
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 2; }
[[ -x "$origin_bin" ]] || cargo build --release --example bench_origin >&2
work="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do { kill -9 "$p" && wait "$p"; } 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

"$origin_bin" --listen 127.0.0.1:18000 --delay-ms 5 --threads 2 >/dev/null 2>&1 &
pids+=($!)
config="$root/bench/tagcache.yaml"
what="hit"
if [[ "${L2:-0}" == 1 ]]; then
  command -v redis-server >/dev/null || { echo "L2=1 needs redis-server" >&2; exit 2; }
  redis-server --bind 127.0.0.1 --port 16379 --save "" --appendonly no --dir "$work" >/dev/null 2>&1 &
  pids+=($!)
  # The memory tier off: every hit after the fill is a Redis hit.
  python3 - "$config" "$work/l2.yaml" <<'EOF'
import sys
src, dst = sys.argv[1], sys.argv[2]
text = open(src).read()
memory = "storage:\n  memory:\n    max_size: 256MiB\n"
assert memory in text, "bench/tagcache.yaml changed its storage block"
open(dst, "w").write(text.replace(memory, 'storage:\n  redis:\n    url: "redis://127.0.0.1:16379"\n'))
EOF
  config="$work/l2.yaml"
  what="L2 (Redis) hit"
  for _ in $(seq 50); do
    (exec 3<>/dev/tcp/127.0.0.1/16379) 2>/dev/null && break
    sleep 0.1
  done
fi
# SCOPE=request counts only what runs inside the listener's per-request
# future (Front::process_new): not the Redis connection's own task, the
# runtime's parking or background work, whose share moves with timing.
scope=()
[[ "${SCOPE:-}" == request ]] && scope=(--toggle-collect='<tagcache::proxy::front::Front as pingora_core::apps::ServerApp>::process_new*')
TAGCACHE_ADMIN_TOKEN=instructions-count-token valgrind --tool=callgrind "${scope[@]}" \
  --compress-strings=no --compress-pos=no --callgrind-out-file="$work/cg.out" \
  "$bin" run --config "$config" >"$work/server.log" 2>&1 &
vg=$!
pids+=($vg)
for _ in $(seq 100); do
  curl -s -o /dev/null http://127.0.0.1:18080/health && break
  sleep 0.3
done

# N requests for one key over 4 keep-alive connections (the first fills it).
# With L2=1, over one: how many Redis lookups leave in one write depends on
# how requests interleave, which moved the count by 10% between runs.
conns=4
[[ "${L2:-0}" == 1 ]] && conns=1
load() {
  python3 - "$1" "$conns" <<'EOF'
import http.client, sys, threading
n = int(sys.argv[1]); conns = int(sys.argv[2])
path = "/api/boards/b1/contacts?page=1&pageSize=50&filter=all"
def run(k):
    c = http.client.HTTPConnection("127.0.0.1", 18080, timeout=30)
    for _ in range(k):
        c.request("GET", path, headers={"X-Workspace-ID": "w1"})
        r = c.getresponse(); r.read()
        if r.status != 200:
            raise SystemExit(f"status {r.status}")
ts = [threading.Thread(target=run, args=(n // conns,)) for _ in range(conns)]
[t.start() for t in ts]; [t.join() for t in ts]
EOF
}
load 400                      # warm up: fill, connections, lazy statics
callgrind_control -z "$vg" >/dev/null 2>&1
load "$n"
callgrind_control -d "$vg" >/dev/null 2>&1
sleep 1
dump="$(ls -t "$work"/cg.out.* | head -1)"
total="$(awk '/^summary:/{print $2}' "$dump")"
# CG_OUT=FILE keeps the profile, for callgrind_annotate --inclusive=yes.
[[ -n "${CG_OUT:-}" ]] && cp "$dump" "$CG_OUT"
if [[ "${L2:-0}" == 1 ]]; then
  layer="$(curl -s -D - -o /dev/null -H 'X-Workspace-ID: w1' \
    'http://127.0.0.1:18080/api/boards/b1/contacts?page=1&pageSize=50&filter=all' | tr -d '\r' |
    awk -F': ' 'tolower($1)=="x-cache-layer"{print $2}')"
  [[ "$layer" == REDIS ]] || { echo "expected Redis hits, X-Cache-Layer: $layer" >&2; exit 1; }
fi
echo "$(basename "$bin"): $((total / n)) user-space instructions per $what ($n hits)"
# TOP=30 also lists the functions with the most instructions of their own.
if [[ "${TOP:-0}" -gt 0 ]]; then
  python3 - "$dump" "$n" "$TOP" <<'EOF'
import collections, sys
path, n, top = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
own = collections.Counter(); fn = None; call = False
for line in open(path, errors="replace"):
    if line.startswith("fn="):
        fn = line[3:].strip()
    elif line.startswith("calls="):
        call = True
    elif line[:1].isdigit() or line[:1] in "+-*":
        if call:
            call = False  # a call's inclusive cost belongs to the callee
        elif fn:
            own[fn] += int(line.split()[1])
for name, ir in own.most_common(top):
    print(f"{ir / n:8.0f}  {name[:140]}")
EOF
fi
