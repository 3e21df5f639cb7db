#!/usr/bin/env python3
"""Load benchmark driver: tagcache against nginx and Varnish on loopback.

Run through bench/run.sh (which builds the binaries and cleans up); see
docs/benchmarks.md for the method. Stdlib only. Every server is started fresh
for every workload, pinned to core 0; the load generator (wrk, herd.py), the
origin and this driver run on core 1.

This file runs the workloads in order and writes the report. The parts:
  settings.py   the environment below, read once
  host.py       the machine: processor, versions, pinning, priority
  procs.py      processes: the servers under test, the origin, Redis, ports
  loadgen.py    load: wrk and its Lua scripts, fills, the herd, single requests
  measure.py    CPU accounting of measured runs (the machine's noise)
  workloads.py  what each workload sends and records
  tracegen.py   the seeded trace of workload pressure (a pure function)
  report.py     markdown and JSON from the results (a pure function; tested
                by test_report.py: python3 -m unittest discover -s bench)
  record.py     puts a run's table into docs/benchmarks.md, one per processor

Environment:
  DURATION        seconds per measured run (default 10; smoke: 5)
  CONNECTIONS     wrk connections (default 50)
  SERVERS         comma list among tagcache,nginx,varnish (default all three)
  WORKLOADS       comma list among hot,zipf,herd,purge,full,ceiling,l2 (default:
                  these seven) and twocore,pressure,latency (run only when named;
                  WORKLOADS=all runs all ten)
  ORIGIN_DELAY_MS origin delay for misses (default 50)
  HERD_N          concurrent requests in the cold herd (default 1000)
  HERD_DELAY_MS   origin delay while the herd runs (default 500)
  PURGE_SIZES     entries covered by the purged tag (default 1,10000,100000)
  ZIPF_S          Zipf exponent (default 1.0)
  FULL_CONTACTS   distinct ~20 KB contact details sent before the Zipf keys in
                  workload full (default 20000, ~400 MB: more than 256 MiB)
  FULL_FILL_LIMIT time limit in s of each of the two fills of workload full
                  (default 120)
  TWOCORE_CONNECTIONS  wrk connections of workload twocore (default 100)
  PRESSURE_MIB    cache memory of every server in workload pressure (default 32)
  PRESSURE_FACTOR distinct bytes of its trace, in times PRESSURE_MIB (default 10)
  PRESSURE_REQUESTS  requests in its trace, a quarter of them warm-up (default 400000)
  PRESSURE_SEED   seed of its trace (default 1)
  PRESSURE_CONNECTIONS  connections replaying it (default 8)
  LATENCY_RATES   fixed rates of workload latency, in % of each server's peak
                  (default 50,90)
  LATENCY_FIXED_RPS  fixed rates of workload latency in req/s, the same for
                  every server (default none), e.g. 30000,45000
  LOAD_BIN        the fixed-rate load generator (default
                  target/release/examples/bench_load)
  TAGCACHE_BIN    tagcache binary (default target/release/tagcache)
  ORIGIN_BIN      origin binary (default target/release/examples/bench_origin)
  QUIET_WAIT      before each measured run, wait up to N s for other processes
                  to leave the machine idle (default 5; 0: do not wait)
  NOISY_RETRIES   repeat a measured run this many times when other processes
                  took over 10 % of a core during it (default 1)
  ROUNDS          rounds of (a) and (b), the servers taking turns in each
                  round; the round with the median req/s is reported, the
                  others listed (default 3; smoke: 1)
  BENCH_PORT, ORIGIN_PORT, ADMIN_PORT, REDIS_PORT
                  ports on 127.0.0.1 (defaults 18080, 18000, 9091, 16379; a
                  default that is busy is replaced by a free port)
  BENCH_NICE      niceness of everything the benchmark runs (default -19 as
                  root, 0 otherwise)
  BENCH_TMP       scratch directory (run.sh creates one)
  RESULTS         markdown output (default bench/results/latest.md)
"""

import atexit
import datetime
import json
import os
import shutil
import signal
import sys
import tempfile

import host
import procs
import report
import workloads
from measure import PROBE_SECONDS, Meter
from settings import Settings, env_int, log

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def fmt_any(v):
    if isinstance(v, float):
        return f"{v:.2f}"
    return str(v)


def median_round(runs):
    """The run with the median req/s among rounds (the lower middle one for
    an even count), with every round's req/s listed in `rounds_rps`."""
    ok = [r for r in runs if isinstance(r.get("rps"), (int, float))]
    if not ok:
        return runs[-1]
    ok.sort(key=lambda r: r["rps"])
    chosen = dict(ok[(len(ok) - 1) // 2])
    chosen["rounds_rps"] = [r.get("rps") for r in runs]
    return chosen


class Bench:
    """One run: its settings, ports, servers and meter, and what it found.
    The workloads read and record through this context."""

    def __init__(self, smoke):
        self.cfg = Settings(smoke, ROOT)
        self.tmp = os.environ.get("BENCH_TMP") or tempfile.mkdtemp(prefix="tagcache-bench-")
        self.results = {}  # (workload, server) -> dict
        self.notes = []
        self.nice = 0
        self.pinning = host.Pinning()
        self.meter = Meter(self.cfg, self.pinning)
        self.ports = None
        self.servers = None
        self.origin = None
        self.have_wrk = shutil.which("wrk") is not None

    def finish(self, key, proc, res):
        """Records a workload's result with the server's peak RSS and what
        other processes used during its measured run."""
        res["rss_mib"] = proc.peak_rss_kib() / 1024.0
        if "cpu_pct" in res:
            res.update(self.meter.take_foreign())
        cache_dir = getattr(proc, "cache_dir", None)
        if cache_dir:
            res["tmpfs_mib"] = procs.du_kib(cache_dir) / 1024.0
        self.results[key] = res
        log(f"{key[0]}/{key[1]}: " + ", ".join(f"{k}={fmt_any(v)}" for k, v in res.items() if not isinstance(v, (dict, list))))

    def raise_priority(self):
        """BENCH_NICE (default -19 as root, else 0): niceness of this driver and so
        of everything it starts, so other work on the machine disturbs less."""
        want = env_int("BENCH_NICE", -19 if os.geteuid() == 0 else 0)
        if want == 0 or self.cfg.smoke:
            self.nice = 0
            return
        self.nice, note = host.raise_priority(want)
        if note:
            self.notes.append(note)

    def check_tools(self):
        cfg = self.cfg
        missing = []
        exes = [cfg.origin_bin] + ([cfg.tagcache_bin] if "tagcache" in cfg.servers else [])
        for exe in exes:
            if not os.access(exe, os.X_OK):
                missing.append(exe)
        needed = ["wrk"] if not cfg.smoke else []
        if "nginx" in cfg.servers or "ceiling" in cfg.workloads:
            needed.append("nginx")
        if "varnish" in cfg.servers:
            needed.append("varnishd")
        if "latency" in cfg.workloads and not os.access(cfg.load_bin, os.X_OK):
            missing.append(cfg.load_bin)
        missing += [t for t in needed if not shutil.which(t)]
        if missing:
            raise SystemExit("missing: " + ", ".join(missing))

    def run_workload(self, w, server):
        if w == "purge" and server == "nginx":
            self.results[("purge", "nginx")] = {"skipped": "n/a: nginx (open source) has no tag purge"}
            return
        log(f"== {w}: {server}")
        try:
            proc = self.servers.start(server, **workloads.start_options(w, self.cfg))
        except Exception as e:  # noqa: BLE001 - report and go on with the next one
            self.results[(w, server)] = {"failed": str(e)[:1500]}
            log(f"{server} failed to start: {e}")
            return
        try:
            res = workloads.PER_SERVER[w](self, server, proc)
            if not proc.alive():
                res["crashed"] = proc.tail(15)
            self.finish((w, server), proc, res)
        except Exception as e:  # noqa: BLE001
            self.results[(w, server)] = {"failed": f"{type(e).__name__}: {e}"[:1500], "log": proc.tail(15)}
            log(f"{server}/{w} failed: {e}")
        finally:
            proc.stop()

    def main(self):
        cfg = self.cfg
        self.ports = procs.Ports.choose()
        self.check_tools()
        self.servers = procs.Servers(cfg, self.ports, self.pinning, self.tmp)
        self.servers.snapshot_binaries()
        note = self.pinning.apply()
        if note:
            self.notes.append(note)
        self.raise_priority()
        self.started = datetime.datetime.now(datetime.timezone.utc)
        self.origin = self.servers.start_origin()
        self.meter.origin = self.origin
        if cfg.smoke:
            return self.smoke_main()
        # Workload by workload, all servers back to back: whatever else runs on
        # the machine then disturbs the servers compared in one row alike.
        for w in ["hot", "zipf", "herd", "purge", "full"]:
            if w in cfg.workloads:
                # (a) and (b) in rounds, the servers taking turns: a slow
                # spell of the VM then hits one round of every server rather
                # than all of one server's runs.
                rounds = cfg.rounds if w in ("hot", "zipf") else 1
                runs = {}
                for _ in range(rounds):
                    for server in cfg.servers:
                        self.run_workload(w, server)
                        runs.setdefault(server, []).append(self.results.get((w, server), {}))
                if rounds > 1:
                    for server, rs in runs.items():
                        self.results[(w, server)] = median_round(rs)
            if w == "hot" and "ceiling" in cfg.workloads:
                workloads.ceiling(self)
        # The workloads beyond the one-core record, each server in turn.
        for w in ["twocore", "pressure", "latency"]:
            if w in cfg.workloads:
                for server in cfg.servers:
                    self.run_workload(w, server)
        if "l2" in cfg.workloads and "tagcache" in cfg.servers:
            for placement in workloads.L2_KEYS:
                try:
                    workloads.l2(self, placement)
                except Exception as e:  # noqa: BLE001
                    self.results[(workloads.L2_KEYS[placement], "tagcache")] = {"failed": f"{type(e).__name__}: {e}"[:1500]}
        self.finished = datetime.datetime.now(datetime.timezone.utc)
        run = self.run_facts()
        md = report.render_markdown(run, self.results)
        out = cfg.results_path or os.path.join(HERE, "results", "latest.md")
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with open(out, "w") as f:
            f.write(md)
        with open(os.path.splitext(out)[0] + ".json", "w") as f:
            json.dump(report.render_json(run, self.results), f, indent=1, sort_keys=True)
        # This processor's table for docs/benchmarks.md (bench/record.py puts it there).
        with open(os.path.splitext(out)[0] + ".section.md", "w") as f:
            f.write(report.processor_section(run, self.results))
        print(md)
        log(f"wrote {out}")
        return 0

    def run_facts(self):
        """What report.render_markdown states about the run besides the results."""
        cfg = self.cfg
        return {
            "started": self.started, "finished": self.finished,
            "machine": host.machine_facts(), "versions": host.versions_line(self.servers.tagcache_bin, ROOT),
            "pinned": self.pinning.pinned, "nice": self.nice,
            "servers": cfg.servers, "workloads": cfg.workloads,
            "conns": cfg.conns, "duration": cfg.duration, "rounds": cfg.rounds,
            "probe_seconds": max(1, min(PROBE_SECONDS, cfg.duration)),
            "origin_delay_ms": cfg.origin_delay_ms, "herd_n": cfg.herd_n, "herd_delay_ms": cfg.herd_delay_ms,
            "zipf_s": cfg.zipf_s, "purge_sizes": cfg.purge_sizes, "full_contacts": cfg.full_contacts,
            "twocore_conns": cfg.twocore_conns, "pressure_mib": cfg.pressure_mib,
            "pressure_factor": cfg.pressure_factor, "latency_rates": cfg.latency_rates,
            "latency_fixed": cfg.latency_fixed,
            "notes": self.notes,
        }

    def smoke_main(self):
        proc = self.servers.start("tagcache")
        try:
            res = workloads.hot(self, "tagcache", proc)
            alive = proc.alive()
        finally:
            proc.stop()
        log(f"smoke: first={res['first']} second={res['second']} req/s={res['rps']:.0f} "
            f"p99={res['p99'] / 1000:.2f} ms errors={res['errors']} non2xx={res['err_status']} origin={res['origin']}")
        ok = res["second"] == "HIT" and res["requests"] > 0 and alive
        if not ok:
            print(f"smoke FAILED: second request X-Cache-Status={res['second']}, requests={res['requests']}, "
                  f"alive={alive}", flush=True)
            return 1
        print(f"smoke ok: X-Cache-Status HIT; {res['rps']:.0f} req/s over {self.cfg.duration}s, "
              f"origin requests {res['origin']}", flush=True)
        return 0


def cleanup():
    host.restore_priority()
    procs.stop_all()


def on_signal(signum, _frame):
    cleanup()
    sys.exit(128 + signum)


def main():
    smoke = "--smoke" in sys.argv[1:] or os.environ.get("SMOKE") == "1"
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    atexit.register(cleanup)
    b = Bench(smoke)
    try:
        return b.main()
    finally:
        cleanup()


if __name__ == "__main__":
    sys.exit(main())
