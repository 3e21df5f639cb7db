#!/usr/bin/env bash
# CPU per request on the server core, split by process and into user and
# system time (from /proc/PID/stat): memory hits, then L2 (Redis) hits with
# Redis on the server's core, as workload (e) places it. Shows where an L2
# hit's time goes, which req/s alone cannot. AMD EPYC figures are in
# docs/benchmarks.md ("L2 on one core: where the time goes").
#   bench/cpu_split.sh        (needs wrk, redis-server, taskset; ports 18080, 18000, 16379)
set -uo pipefail
cd "$(dirname "$0")/.."
for c in wrk redis-server taskset; do command -v $c >/dev/null || { echo "needs $c" >&2; exit 2; }; done
[[ -x target/release/tagcache && -x target/release/examples/bench_origin ]] || { echo "build first: cargo build --release --bin tagcache --example bench_origin" >&2; exit 2; }
P='/api/boards/b1/contacts?page=1&pageSize=50&filter=all'
work=$(mktemp -d)
taskset -c 1 target/release/examples/bench_origin --listen 127.0.0.1:18000 --delay-ms 5 --threads 2 >/dev/null 2>&1 &
o=$!
ticks() { awk '{print $14, $15}' /proc/$1/stat; }
measure() { # name pids...
  local name=$1; shift
  declare -A u0 s0
  for p in "$@"; do read a b < <(ticks $p); u0[$p]=$a; s0[$p]=$b; done
  out=$(taskset -c 1 wrk -t1 -c50 -d10s -H 'X-Workspace-ID: w1' "http://127.0.0.1:18080$P" | grep -E "Requests/sec")
  rps=$(echo "$out" | awk '{print $2}')
  echo "$name: $out"
  for p in "$@"; do read a b < <(ticks $p); echo "  $(cat /proc/$p/comm): user $(( (a-${u0[$p]}) )) sys $(( (b-${s0[$p]}) )) ticks; us/req user $(python3 -c "print(round(($a-${u0[$p]})*1e4/($rps*10),2))") sys $(python3 -c "print(round(($b-${s0[$p]})*1e4/($rps*10),2))")"; done
}
TAGCACHE_ADMIN_TOKEN=x taskset -c 0 target/release/tagcache run --config bench/tagcache.yaml >/dev/null 2>&1 &
t=$!; sleep 1.5
curl -s -o /dev/null -H 'X-Workspace-ID: w1' "http://127.0.0.1:18080$P"
measure memory $t
kill $t; wait $t 2>/dev/null
taskset -c 0 redis-server --bind 127.0.0.1 --port 16379 --save "" --appendonly no --dir $work >/dev/null 2>&1 &
r=$!; sleep 0.5
python3 - bench/tagcache.yaml $work/l2.yaml <<'PY'
import sys
t=open(sys.argv[1]).read()
open(sys.argv[2],'w').write(t.replace("storage:\n  memory:\n    max_size: 256MiB\n",'storage:\n  redis:\n    url: "redis://127.0.0.1:16379"\n'))
PY
TAGCACHE_ADMIN_TOKEN=x taskset -c 0 target/release/tagcache run --config $work/l2.yaml >/dev/null 2>&1 &
t=$!; sleep 1.5
curl -s -o /dev/null -H 'X-Workspace-ID: w1' "http://127.0.0.1:18080$P"; sleep 0.2
curl -s -D- -o /dev/null -H 'X-Workspace-ID: w1' "http://127.0.0.1:18080$P" | grep -i x-cache
measure "L2 (redis same core)" $t $r
kill $t $r $o; wait 2>/dev/null; rm -rf $work
