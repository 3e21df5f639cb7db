"""CPU accounting of measured runs: what the server used of its core, and what
other processes took of the server's core and of the load core meanwhile, so
that a run disturbed by the rest of the machine is repeated or flagged."""

import os
import time

from loadgen import run_wrk
from settings import log

# Seconds of the 1-connection latency probe (at most DURATION).
PROBE_SECONDS = 5


def is_noisy(foreign_server, foreign_load, server_cpu):
    """Whether other processes disturbed a measured run: they took over 10 % of
    the server's core, or the server was not saturated (under 90 % of its core)
    while they took over 10 % of the load generator's core. (When the server is
    saturated, others only fill the load core's idle time.)"""
    if foreign_server is None:
        return False
    if foreign_server > 10:
        return True
    return (server_cpu or 0) < 90 and (foreign_load or 0) > 10


class Meter:
    """Measures runs on the cores of a Pinning. `origin` and `extra_core1`
    (processes placed on the load core on purpose, such as Redis in l2-apart)
    are counted as the benchmark's own load, not as others'."""

    def __init__(self, cfg, pinning):
        self.cfg = cfg
        self.pinning = pinning
        self.origin = None
        self.extra_core1 = []
        self.last_foreign = None
        self.last_foreign_load = None
        self.last_load_cpu = None

    def core_busy_ticks(self, cpu):
        """Busy ticks of one core (all processes), from /proc/stat."""
        if not self.pinning.pinned:
            return None
        with open("/proc/stat") as f:
            for line in f:
                if line.startswith(f"cpu{cpu} "):
                    v = [int(x) for x in line.split()[1:]]
                    # user nice system idle iowait irq softirq steal
                    return v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)
        return None

    def own_core1_ticks(self):
        """CPU ticks of what runs on core 1 on purpose: this driver, its waited
        children (wrk, herd.py) and the origin."""
        hz = os.sysconf("SC_CLK_TCK")
        t = os.times()
        own = (t.user + t.system + t.children_user + t.children_system) * hz
        own += sum(p.cpu_ticks() for p in self.extra_core1)
        return own + (self.origin.cpu_ticks() if self.origin else 0)

    def wait_quiet(self):
        """With QUIET_WAIT=N, waits up to N s for the machine to be idle (other
        processes under 10 % of a core) before a measured run."""
        limit = self.cfg.quiet_wait
        if limit <= 0 or self.cfg.smoke:
            return
        hz = os.sysconf("SC_CLK_TCK")
        deadline = time.time() + limit
        waited = False
        while True:
            with open("/proc/stat") as f:
                v0 = [int(x) for x in f.readline().split()[1:]]
            time.sleep(1.0)
            with open("/proc/stat") as f:
                v1 = [int(x) for x in f.readline().split()[1:]]
            busy = sum((v1[i] - v0[i]) for i in (0, 1, 2, 5, 6, 7)) / hz
            if busy < 0.10:
                if waited:
                    log("machine is quiet again")
                return
            if time.time() > deadline:
                log(f"machine still busy ({busy * 100:.0f} % of a core) after {limit} s; measuring anyway")
                return
            if not waited:
                log(f"machine busy ({busy * 100:.0f} % of a core used by others); waiting up to {limit} s")
                waited = True

    def measured(self, proc, fn):
        """Runs fn() and returns (result, server CPU % of one core over the run).

        Also records how much of each core other processes used meanwhile
        (anything else running on the machine): on the server's core everything
        but the server, on the load core everything but wrk, the origin and this
        driver. A run where others took over 10 % of either core is repeated
        (NOISY_RETRIES times, after waiting for quiet); the last one is kept."""
        retries = 0 if self.cfg.smoke else self.cfg.noisy_retries
        attempt = 0
        while True:
            res, cpu = self._measured_once(proc, fn)
            noisy = is_noisy(self.last_foreign, self.last_foreign_load, cpu)
            if not noisy or attempt >= retries:
                return res, cpu
            attempt += 1
            log(f"others used {self.last_foreign:.0f} % / {self.last_foreign_load:.0f} % of the server / load cores; "
                f"measuring again ({attempt}/{retries})")

    def _measured_once(self, proc, fn):
        self.wait_quiet()
        hz = os.sysconf("SC_CLK_TCK")
        server_cpu, load_cpu = self.pinning.server_cpu, self.pinning.load_cpu
        b0 = self.core_busy_ticks(server_cpu)
        l0 = self.core_busy_ticks(load_cpu)
        o0 = self.own_core1_ticks()
        c0, t0 = proc.cpu_ticks(), time.perf_counter()
        res = fn()
        c1, t1 = proc.cpu_ticks(), time.perf_counter()
        b1 = self.core_busy_ticks(server_cpu)
        l1 = self.core_busy_ticks(load_cpu)
        o1 = self.own_core1_ticks()
        wall = max(t1 - t0, 1e-9)
        if None not in (b0, b1, l0, l1):
            self.last_foreign = max(0.0, 100.0 * ((b1 - b0) - (c1 - c0)) / hz / wall)
            self.last_foreign_load = max(0.0, 100.0 * ((l1 - l0) - (o1 - o0)) / hz / wall)
            self.last_load_cpu = 100.0 * (o1 - o0) / hz / wall
        else:
            self.last_foreign = self.last_foreign_load = self.last_load_cpu = None
        return res, 100.0 * (c1 - c0) / hz / wall

    def measured_machine(self, proc, fn):
        """For a server on every core (workload twocore): runs fn() and returns
        (result, fields) with the server's CPU (cpu_pct, in % of one core: up
        to 200 on two cores), the benchmark's own (load_cpu_pct: the load
        generator, the origin, this driver) and everything else's
        (foreign_cpu_pct) over the run, from the machine's total in /proc/stat."""
        self.wait_quiet()
        hz = os.sysconf("SC_CLK_TCK")

        def busy():
            with open("/proc/stat") as f:
                v = [int(x) for x in f.readline().split()[1:]]
            return v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)
        m0, o0, c0, t0 = busy(), self.own_core1_ticks(), proc.cpu_ticks(), time.perf_counter()
        res = fn()
        m1, o1, c1, t1 = busy(), self.own_core1_ticks(), proc.cpu_ticks(), time.perf_counter()
        wall = max(t1 - t0, 1e-9)
        pct = lambda ticks: 100.0 * ticks / hz / wall  # noqa: E731
        return res, {"cpu_pct": pct(c1 - c0), "load_cpu_pct": pct(o1 - o0),
                     "foreign_cpu_pct": max(0.0, pct((m1 - m0) - (c1 - c0) - (o1 - o0)))}

    def take_foreign(self):
        """What others used during the last measured run, once: the fields
        foreign_cpu_pct, foreign_load_cpu_pct and load_cpu_pct, or {}."""
        if self.last_foreign is None:
            return {}
        out = {"foreign_cpu_pct": self.last_foreign, "foreign_load_cpu_pct": self.last_foreign_load,
               "load_cpu_pct": self.last_load_cpu}
        self.last_foreign = None
        return out

    def probe_1conn(self, procs, port, path):
        """Hit latency without queueing: wrk with one connection on the hot
        path for min(PROBE_SECONDS, DURATION) s, after the saturated run.
        Returns lat1_* fields (latencies in microseconds, like p50/p99).
        procs are everything on the server's core (tagcache, and Redis for L2);
        a run that other processes disturbed is repeated like measured() does."""
        secs = max(1, min(PROBE_SECONDS, self.cfg.duration))
        retries = self.cfg.noisy_retries
        hz = os.sysconf("SC_CLK_TCK")
        server_cpu, load_cpu = self.pinning.server_cpu, self.pinning.load_cpu
        attempt = 0
        while True:
            self.wait_quiet()
            b0, l0, o0 = self.core_busy_ticks(server_cpu), self.core_busy_ticks(load_cpu), self.own_core1_ticks()
            c0, t0 = sum(p.cpu_ticks() for p in procs), time.perf_counter()
            d = run_wrk(port, "hot.lua", path, secs, 1)
            c1, t1 = sum(p.cpu_ticks() for p in procs), time.perf_counter()
            b1, l1, o1 = self.core_busy_ticks(server_cpu), self.core_busy_ticks(load_cpu), self.own_core1_ticks()
            wall = max(t1 - t0, 1e-9)
            cpu = 100.0 * (c1 - c0) / hz / wall
            res = {
                "lat1_s": secs, "lat1_rps": d["rps"], "lat1_requests": d["requests"],
                "lat1_errors": d["errors"] + d["err_status"], "lat1_cpu_pct": cpu,
                "lat1_p50": d["p50"], "lat1_p90": d["p90"], "lat1_p99": d["p99"], "lat1_p999": d["p999"],
                "lat1_max": d["lat_max"],
            }
            if None in (b0, b1, l0, l1):
                return res
            res["lat1_foreign_cpu_pct"] = max(0.0, 100.0 * ((b1 - b0) - (c1 - c0)) / hz / wall)
            res["lat1_foreign_load_cpu_pct"] = max(0.0, 100.0 * ((l1 - l0) - (o1 - o0)) / hz / wall)
            if not is_noisy(res["lat1_foreign_cpu_pct"], res["lat1_foreign_load_cpu_pct"], cpu) or attempt >= retries:
                return res
            attempt += 1
            log(f"1-connection run: others used {res['lat1_foreign_cpu_pct']:.0f} % / "
                f"{res['lat1_foreign_load_cpu_pct']:.0f} % of the server / load cores; measuring again ({attempt}/{retries})")
