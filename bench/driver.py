#!/usr/bin/env python3
"""Load benchmark driver: tagcache against nginx and Varnish on loopback.

Run through bench/run.sh (which builds the binaries and cleans up); see
docs/benchmarks.md for the method. Stdlib only. Every server is started fresh
for every workload, pinned to core 0; the load generator (wrk, herd.py), the
origin and this driver run on core 1.

Environment:
  DURATION        seconds per measured run (default 10; smoke: 5)
  CONNECTIONS     wrk connections (default 50)
  SERVERS         comma list among tagcache,nginx,varnish (default all three)
  WORKLOADS       comma list among hot,zipf,herd,purge,full,ceiling,l2 (default all)
  ORIGIN_DELAY_MS origin delay for misses (default 50)
  HERD_N          concurrent requests in the cold herd (default 1000)
  HERD_DELAY_MS   origin delay while the herd runs (default 500)
  PURGE_SIZES     entries covered by the purged tag (default 1,10000,100000)
  ZIPF_S          Zipf exponent (default 1.0)
  FULL_CONTACTS   distinct ~20 KB contact details sent before the Zipf keys in
                  workload full (default 20000, ~400 MB: more than 256 MiB)
  FULL_FILL_LIMIT time limit in s of each of the two fills of workload full
                  (default 120)
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
import http.client
import json
import os
import platform
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
LUA = os.path.join(HERE, "lua")

HOST = "127.0.0.1"
# Defaults, as written in bench/tagcache.yaml; see choose_ports().
PROXY_PORT = 18080
ORIGIN_PORT = 18000
ADMIN_PORT = 9091
REDIS_PORT = 16379

ALL_SERVERS = ["tagcache", "nginx", "varnish"]
ALL_WORKLOADS = ["hot", "zipf", "herd", "purge", "full", "ceiling", "l2"]

HOT_PATH = "/api/boards/b1/contacts?page=1&pageSize=50&filter=all"
HOT_WS = "w1"

# Every server's cache memory, and tagcache's memory goal with that store full.
STORE_MIB = 256
GOAL_RSS_MIB = 320
# tagcache's goal for a hit served from L2 (Redis), measured unsaturated.
GOAL_L2_P99_MS = 1.0
# Seconds of the 1-connection latency probe (at most DURATION).
PROBE_SECONDS = 5


def env_int(name, default):
    v = os.environ.get(name, "")
    return int(v) if v.strip() else default


def env_list(name, default):
    v = os.environ.get(name, "")
    return [x.strip() for x in v.split(",") if x.strip()] if v.strip() else list(default)


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Processes


class Proc:
    """A server started in its own process group, stopped with the whole group."""

    registry = []

    def __init__(self, name, argv, cwd, env=None, stop_signal=signal.SIGTERM):
        self.name = name
        self.cwd = cwd
        self.stop_signal = stop_signal
        self.logpath = os.path.join(cwd, f"{name}.log")
        self.logf = open(self.logpath, "ab")
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        self.p = subprocess.Popen(
            argv,
            cwd=cwd,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=self.logf,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.pgid = self.p.pid
        # Its own session is its own scheduler autogroup: give it our priority.
        set_autogroup_nice(self.p.pid, NICE)
        Proc.registry.append(self)
        tmp = os.environ.get("BENCH_TMP")
        if tmp:
            with open(os.path.join(tmp, "pgids"), "a") as f:
                f.write(f"{self.pgid}\n")

    def alive(self):
        return self.p.poll() is None

    def pids(self):
        """Every live process of this server's process group."""
        out = []
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open(f"/proc/{d}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            fields = stat[stat.rfind(")") + 2 :].split()
            # fields[0] is state (field 3); pgrp is field 5 -> index 2
            if int(fields[2]) == self.pgid:
                out.append(int(d))
        return out

    def rss_kib(self):
        """Current resident memory of all the group's processes."""
        total = 0
        for pid in self.pids():
            try:
                with open(f"/proc/{pid}/status") as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            total += int(line.split()[1])
            except OSError:
                pass
        return total

    def peak_rss_kib(self):
        total = 0
        for pid in self.pids():
            try:
                with open(f"/proc/{pid}/status") as f:
                    for line in f:
                        if line.startswith("VmHWM:"):
                            total += int(line.split()[1])
            except OSError:
                pass
        return total

    def cpu_ticks(self):
        total = 0
        for pid in self.pids():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            fields = stat[stat.rfind(")") + 2 :].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        return total

    def tail(self, n=30):
        try:
            with open(self.logpath, "rb") as f:
                return b"\n".join(f.read().splitlines()[-n:]).decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self):
        if self in Proc.registry:
            Proc.registry.remove(self)
        if self.p.poll() is None:
            try:
                os.killpg(self.pgid, self.stop_signal)
            except ProcessLookupError:
                pass
            try:
                self.p.wait(timeout=8)
            except subprocess.TimeoutExpired:
                pass
        # Whatever is left of the group (children, a stuck parent).
        try:
            os.killpg(self.pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self.logf.close()
        for d in getattr(self, "remove_dirs", []):
            shutil.rmtree(d, ignore_errors=True)


NICE = 0
SAVED_AUTOGROUP_NICE = None


def set_autogroup_nice(pid, nice):
    """With autogroup scheduling, CPU is shared between sessions first and nice
    only counts inside one: the session's own nice is in /proc/PID/autogroup."""
    if not nice:
        return
    try:
        with open(f"/proc/{pid}/autogroup", "w") as f:
            f.write(str(nice))
    except OSError:
        pass


def get_autogroup_nice(pid="self"):
    try:
        with open(f"/proc/{pid}/autogroup") as f:
            return int(f.read().split("nice")[1])
    except (OSError, IndexError, ValueError):
        return None


def cleanup():
    global SAVED_AUTOGROUP_NICE
    if SAVED_AUTOGROUP_NICE is not None:
        try:
            with open("/proc/self/autogroup", "w") as f:
                f.write(str(SAVED_AUTOGROUP_NICE))
        except OSError:
            pass
        SAVED_AUTOGROUP_NICE = None
    for p in list(Proc.registry):
        try:
            p.stop()
        except Exception:  # noqa: BLE001 - best effort on the way out
            pass


def on_signal(signum, _frame):
    cleanup()
    sys.exit(128 + signum)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sk:
        sk.bind((HOST, 0))
        return sk.getsockname()[1]


def choose_ports():
    """BENCH_PORT, ORIGIN_PORT, ADMIN_PORT, REDIS_PORT from the environment;
    otherwise the defaults, or a free port when something else listens there."""
    g = globals()
    for name, env in [("PROXY_PORT", "BENCH_PORT"), ("ORIGIN_PORT", "ORIGIN_PORT"),
                      ("ADMIN_PORT", "ADMIN_PORT"), ("REDIS_PORT", "REDIS_PORT")]:
        if os.environ.get(env, "").strip():
            g[name] = int(os.environ[env])
        elif port_open(g[name]):
            new = free_port()
            log(f"port {g[name]} is in use by something else; using {new} for {name.lower()}")
            g[name] = new


def port_open(port):
    try:
        with socket.create_connection((HOST, port), timeout=0.2):
            return True
    except OSError:
        return False


def wait_port(port, proc, timeout=20.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if port_open(port):
            return True
        if proc is not None and not proc.alive():
            return False
        time.sleep(0.05)
    return False


def wait_port_free(port, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not port_open(port):
            return True
        time.sleep(0.1)
    return False


# --------------------------------------------------------------------------
# HTTP helpers (fresh connection each time; loopback only)


def request(method, port, path, headers=None, body=None, timeout=30):
    c = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        c.close()


def cache_status(port, path, ws):
    try:
        st, h, body = request("GET", port, path, {"X-Workspace-ID": ws})
    except OSError as e:
        return f"error:{type(e).__name__}", {}, 0
    return (h.get("x-cache-status", "-").upper() if st == 200 else f"status:{st}"), h, len(body)


def origin_count():
    return int(request("GET", ORIGIN_PORT, "/__count")[2].decode().strip())


def origin_reset():
    request("POST", ORIGIN_PORT, "/__reset")


def origin_delay(ms):
    request("POST", ORIGIN_PORT, f"/__delay?ms={int(ms)}")


# --------------------------------------------------------------------------
# Load generation


def run_wrk(script, path, duration, conns, script_args=(), timeout_s=5):
    """Runs wrk on the proxy port; returns the parsed BENCHJSON of report.lua."""
    argv = [
        "wrk", "-t", "1", "-c", str(conns), "-d", f"{duration}s", "--timeout", f"{timeout_s}s",
        "-s", os.path.join(LUA, script), f"http://{HOST}:{PROXY_PORT}{path}",
    ]
    if script_args:
        argv += ["--", *script_args]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60)
    for line in r.stdout.splitlines():
        if line.startswith("BENCHJSON "):
            d = json.loads(line[len("BENCHJSON "):])
            d["rps"] = d["requests"] / (d["duration_us"] / 1e6) if d["duration_us"] else 0.0
            d["errors"] = d["err_connect"] + d["err_read"] + d["err_write"] + d["err_timeout"]
            return d
    raise RuntimeError(f"wrk produced no result (rc={r.returncode}): {r.stdout[-500:]} {r.stderr[-500:]}")


def run_fill(mode_args, conns=100, limit_s=300):
    """Requests each key of a set once (fill.lua); returns (seconds, received, non200)."""
    argv = [
        "wrk", "-t", "1", "-c", str(conns), "-d", f"{limit_s}s", "--timeout", "10s",
        "-s", os.path.join(LUA, "fill.lua"), f"http://{HOST}:{PROXY_PORT}/", "--", *mode_args,
    ]
    t0 = time.perf_counter()
    r = subprocess.run(argv, capture_output=True, text=True, timeout=limit_s + 30)
    secs = time.perf_counter() - t0
    time.sleep(0.3)  # let the last fills settle before anyone reads the origin's count
    for line in r.stdout.splitlines():
        if line.startswith("FILLJSON "):
            d = json.loads(line[len("FILLJSON "):])
            return secs, d["received"], d["non200"]
    raise RuntimeError(f"fill did not finish (rc={r.returncode}): {r.stdout[-500:]} {r.stderr[-500:]}")


def python_hot_loop(duration):
    """Fallback load for --smoke when wrk is missing: one keep-alive connection."""
    c = http.client.HTTPConnection(HOST, PROXY_PORT, timeout=10)
    n = 0
    lat = []
    hits = 0
    end = time.time() + duration
    while time.time() < end:
        t0 = time.perf_counter()
        c.request("GET", HOT_PATH, headers={"X-Workspace-ID": HOT_WS})
        r = c.getresponse()
        r.read()
        lat.append((time.perf_counter() - t0) * 1e6)
        if (r.getheader("x-cache-status") or "").upper() == "HIT":
            hits += 1
        n += 1
    c.close()
    lat.sort()
    pick = lambda p: int(lat[min(len(lat) - 1, int(p / 100 * len(lat)))]) if lat else 0  # noqa: E731
    return {
        "requests": n, "duration_us": int(duration * 1e6), "rps": n / duration, "errors": 0,
        "err_status": 0, "p50": pick(50), "p90": pick(90), "p99": pick(99), "p999": pick(99.9),
        "lat_max": int(lat[-1]) if lat else 0, "hits": hits,
    }


# --------------------------------------------------------------------------
# Servers


class Bench:
    def __init__(self, smoke):
        self.smoke = smoke
        self.tmp = os.environ.get("BENCH_TMP") or tempfile.mkdtemp(prefix="tagcache-bench-")
        self.duration = env_int("DURATION", 5 if smoke else 10)
        self.rounds = max(1, env_int("ROUNDS", 1 if smoke else 3))
        self.conns = env_int("CONNECTIONS", 50)
        self.servers = ["tagcache"] if smoke else [s for s in env_list("SERVERS", ALL_SERVERS) if s in ALL_SERVERS]
        self.workloads = ["hot"] if smoke else env_list("WORKLOADS", ALL_WORKLOADS)
        self.origin_delay_ms = env_int("ORIGIN_DELAY_MS", 50)
        self.herd_n = env_int("HERD_N", 1000)
        self.herd_delay_ms = env_int("HERD_DELAY_MS", 500)
        self.purge_sizes = [int(x) for x in env_list("PURGE_SIZES", ["1", "10000", "100000"])]
        self.zipf_s = os.environ.get("ZIPF_S", "1.0")
        self.full_contacts = env_int("FULL_CONTACTS", 20000)
        self.full_fill_limit = env_int("FULL_FILL_LIMIT", 120)
        self.tagcache_bin = os.path.abspath(os.environ.get("TAGCACHE_BIN") or os.path.join(ROOT, "target/release/tagcache"))
        self.origin_bin = os.path.abspath(os.environ.get("ORIGIN_BIN") or os.path.join(ROOT, "target/release/examples/bench_origin"))
        self.token = os.environ.get("TAGCACHE_ADMIN_TOKEN") or "bench-admin-token"
        self.results = {}  # (workload, server) -> dict
        self.notes = []
        self.pinned = False
        self.root = os.geteuid() == 0
        self.origin = None
        # Processes placed on the load core on purpose (Redis in l2-apart).
        self.extra_core1 = []
        self.have_wrk = shutil.which("wrk") is not None

    # --- pinning -----------------------------------------------------------
    def raise_priority(self):
        """BENCH_NICE (default -10 as root, else 0): niceness of this driver and so
        of everything it starts, so other work on the machine disturbs less."""
        want = env_int("BENCH_NICE", -19 if self.root else 0)
        if want == 0 or self.smoke:
            self.nice = 0
            return
        global NICE, SAVED_AUTOGROUP_NICE
        try:
            os.setpriority(os.PRIO_PROCESS, 0, want)
            self.nice = want
        except OSError as e:
            self.nice = 0
            self.notes.append(f"Could not set niceness {want}: {e}.")
            return
        NICE = want
        # The driver's session (wrk, herd.py run in it) too; restored on exit.
        SAVED_AUTOGROUP_NICE = get_autogroup_nice()
        set_autogroup_nice("self", want)

    def pin_self(self):
        try:
            cpus = sorted(os.sched_getaffinity(0))
        except AttributeError:
            cpus = []
        if len(cpus) >= 2 and shutil.which("taskset"):
            # Core 0: server under test. Core 1: everything else (inherited).
            os.sched_setaffinity(0, {cpus[1]})
            self.server_cpu = str(cpus[0])
            self.load_cpu = str(cpus[1])
            self.pinned = True
        else:
            self.server_cpu = self.load_cpu = None
            self.notes.append("Fewer than 2 CPUs (or no taskset): nothing was pinned.")

    def pin(self, argv):
        return (["taskset", "-c", self.server_cpu] + argv) if self.pinned else argv

    def workdir(self, name):
        d = tempfile.mkdtemp(prefix=f"{name}-", dir=self.tmp)
        os.chmod(d, 0o755)
        return d

    # --- origin ------------------------------------------------------------
    def start_origin(self):
        if not wait_port_free(ORIGIN_PORT, 2):
            raise SystemExit(f"port {ORIGIN_PORT} is in use; stop whatever listens there")
        d = self.workdir("origin")
        self.origin = Proc(
            "origin",
            [self.origin_bin, "--listen", f"{HOST}:{ORIGIN_PORT}", "--delay-ms", str(self.origin_delay_ms), "--threads", "2"],
            d,
        )
        if not wait_port(ORIGIN_PORT, self.origin):
            raise SystemExit(f"origin did not start:\n{self.origin.tail()}")

    # --- servers under test ------------------------------------------------
    def tagcache_config(self, storage_yaml=None):
        with open(os.path.join(HERE, "tagcache.yaml")) as f:
            text = f.read()
        text = (text.replace(f'"{HOST}:18080"', f'"{HOST}:{PROXY_PORT}"')
                .replace(f'"{HOST}:18000"', f'"{HOST}:{ORIGIN_PORT}"')
                .replace(f'"{HOST}:9091"', f'"{HOST}:{ADMIN_PORT}"'))
        if storage_yaml is not None:
            lines = text.splitlines()
            out, skip = [], False
            for line in lines:
                if line.startswith("storage:"):
                    out.extend(storage_yaml.rstrip("\n").splitlines())
                    skip = True
                    continue
                if skip and (line.startswith(" ") or not line.strip()):
                    continue
                skip = False
                out.append(line)
            text = "\n".join(out) + "\n"
        return text

    def start(self, server, variant=None):
        if not wait_port_free(PROXY_PORT, 10):
            raise RuntimeError(f"port {PROXY_PORT} still in use")
        d = self.workdir(f"{server}{'-' + variant.split(':')[0] if variant else ''}")
        if server == "tagcache":
            cfg = os.path.join(d, "tagcache.yaml")
            with open(cfg, "w") as f:
                f.write(self.tagcache_config(variant_storage(variant)))
            if not wait_port_free(ADMIN_PORT, 10):
                raise RuntimeError(f"admin port {ADMIN_PORT} still in use")
            p = Proc(
                "tagcache",
                self.pin([self.tagcache_bin, "run", "-c", cfg]),
                d,
                env={"TAGCACHE_ADMIN_TOKEN": self.token, "TAGCACHE_LOG": os.environ.get("TAGCACHE_LOG", "warn")},
                stop_signal=signal.SIGINT,  # fast shutdown; SIGTERM waits for the grace period
            )
            ok = wait_port(PROXY_PORT, p) and wait_port(ADMIN_PORT, p)
        elif server in ("nginx", "nginx-static"):
            p = self.start_nginx(d, static=(server == "nginx-static"))
            ok = wait_port(PROXY_PORT, p)
        elif server == "varnish":
            p = self.start_varnish(d)
            ok = wait_port(PROXY_PORT, p, timeout=30)
        elif server == "static":
            p = Proc(
                "static",
                self.pin([self.origin_bin, "--static", "--threads", "1", "--listen", f"{HOST}:{PROXY_PORT}"]),
                d,
            )
            ok = wait_port(PROXY_PORT, p)
        else:
            raise ValueError(server)
        if not ok:
            tail = p.tail()
            p.stop()
            raise RuntimeError(f"{server} did not start; log tail:\n{tail}")
        return p

    def start_nginx(self, d, static=False):
        cache_root = "/dev/shm" if os.path.isdir("/dev/shm") else self.tmp
        cache_dir = tempfile.mkdtemp(prefix="tagcache-bench-nginx-cache-", dir=cache_root)
        tmp_file = os.path.join(self.tmp, "pgids-cachedirs")
        with open(tmp_file, "a") as f:
            f.write(cache_dir + "\n")
        user_line = ""
        if self.root:
            user_line = "user nobody nogroup;"
            for p in (d, cache_dir):
                shutil.chown(p, "nobody", "nogroup")
        tpl = "nginx-static.conf.in" if static else "nginx.conf.in"
        with open(os.path.join(HERE, "conf", tpl)) as f:
            conf = f.read()
        conf = (
            conf.replace("@USER@", user_line)
            .replace("@DIR@", d)
            .replace("@CACHE_DIR@", cache_dir)
            .replace("@PORT@", str(PROXY_PORT))
            .replace("@ORIGIN_PORT@", str(ORIGIN_PORT))
            .replace("@STATIC_BODY@", static_body())
        )
        path = os.path.join(d, "nginx.conf")
        with open(path, "w") as f:
            f.write(conf)
        p = Proc("nginx", self.pin(["nginx", "-p", d + "/", "-e", os.path.join(d, "error.log"), "-c", path]), d,
                 stop_signal=signal.SIGTERM)
        p.cache_dir = cache_dir
        p.remove_dirs = [cache_dir]
        return p

    def start_varnish(self, d):
        with open(os.path.join(HERE, "conf", "varnish.vcl.in")) as f:
            vcl = f.read().replace("@ORIGIN_PORT@", str(ORIGIN_PORT))
        path = os.path.join(d, "bench.vcl")
        with open(path, "w") as f:
            f.write(vcl)
        os.chmod(path, 0o644)
        argv = [
            "varnishd", "-F", "-n", os.path.join(d, "varnish"), "-a", f"{HOST}:{PROXY_PORT}",
            "-T", f"{HOST}:0", "-f", path, "-s", "malloc,256m", "-p", "thread_pools=1",
        ]
        if not self.root:
            argv += ["-j", "none"]
        return Proc("varnish", self.pin(argv), d, stop_signal=signal.SIGTERM)

    # --- measurements ------------------------------------------------------
    def core_busy_ticks(self, cpu):
        """Busy ticks of one core (all processes), from /proc/stat."""
        if not self.pinned:
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
        limit = env_int("QUIET_WAIT", 5)
        if limit <= 0 or self.smoke:
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
        retries = 0 if self.smoke else env_int("NOISY_RETRIES", 1)
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
        b0 = self.core_busy_ticks(self.server_cpu)
        l0 = self.core_busy_ticks(self.load_cpu)
        o0 = self.own_core1_ticks()
        c0, t0 = proc.cpu_ticks(), time.perf_counter()
        res = fn()
        c1, t1 = proc.cpu_ticks(), time.perf_counter()
        b1 = self.core_busy_ticks(self.server_cpu)
        l1 = self.core_busy_ticks(self.load_cpu)
        o1 = self.own_core1_ticks()
        wall = max(t1 - t0, 1e-9)
        if None not in (b0, b1, l0, l1):
            self.last_foreign = max(0.0, 100.0 * ((b1 - b0) - (c1 - c0)) / hz / wall)
            self.last_foreign_load = max(0.0, 100.0 * ((l1 - l0) - (o1 - o0)) / hz / wall)
            self.last_load_cpu = 100.0 * (o1 - o0) / hz / wall
        else:
            self.last_foreign = self.last_foreign_load = self.last_load_cpu = None
        return res, 100.0 * (c1 - c0) / hz / wall

    def finish(self, key, proc, res):
        res["rss_mib"] = proc.peak_rss_kib() / 1024.0
        if getattr(self, "last_foreign", None) is not None and "cpu_pct" in res:
            res["foreign_cpu_pct"] = self.last_foreign
            res["foreign_load_cpu_pct"] = self.last_foreign_load
            res["load_cpu_pct"] = self.last_load_cpu
            self.last_foreign = None
        cache_dir = getattr(proc, "cache_dir", None)
        if cache_dir:
            res["tmpfs_mib"] = du_kib(cache_dir) / 1024.0
        self.results[key] = res
        log(f"{key[0]}/{key[1]}: " + ", ".join(f"{k}={fmt_any(v)}" for k, v in res.items() if not isinstance(v, (dict, list))))

    def w_hot(self, server, proc, key="hot"):
        origin_delay(self.origin_delay_ms)
        origin_reset()
        first = cache_status(PROXY_PORT, HOT_PATH, HOT_WS)[0]
        second = cache_status(PROXY_PORT, HOT_PATH, HOT_WS)[0]
        if self.have_wrk:
            wrk_res, cpu = self.measured(proc, lambda: run_wrk("hot.lua", HOT_PATH, self.duration, self.conns))
        else:
            wrk_res, cpu = self.measured(proc, lambda: python_hot_loop(self.duration))
            self.notes.append("wrk is not installed: the smoke load was one Python keep-alive connection.")
        res = dict(wrk_res)
        res.update({"cpu_pct": cpu, "origin": origin_count(), "first": first, "second": second})
        if server == "tagcache" and self.have_wrk and not self.smoke:
            res.update(self.probe_1conn([proc], HOT_PATH))
        return res

    def probe_1conn(self, procs, path):
        """Hit latency without queueing: wrk with one connection on the hot
        path for min(PROBE_SECONDS, DURATION) s, after the saturated run.
        Returns lat1_* fields (latencies in microseconds, like p50/p99).
        procs are everything on the server's core (tagcache, and Redis for L2);
        a run that other processes disturbed is repeated like measured() does."""
        secs = max(1, min(PROBE_SECONDS, self.duration))
        retries = env_int("NOISY_RETRIES", 1)
        hz = os.sysconf("SC_CLK_TCK")
        attempt = 0
        while True:
            self.wait_quiet()
            b0, l0, o0 = self.core_busy_ticks(self.server_cpu), self.core_busy_ticks(self.load_cpu), self.own_core1_ticks()
            c0, t0 = sum(p.cpu_ticks() for p in procs), time.perf_counter()
            d = run_wrk("hot.lua", path, secs, 1)
            c1, t1 = sum(p.cpu_ticks() for p in procs), time.perf_counter()
            b1, l1, o1 = self.core_busy_ticks(self.server_cpu), self.core_busy_ticks(self.load_cpu), self.own_core1_ticks()
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

    def w_zipf(self, server, proc):
        origin_delay(0)
        origin_reset()
        fill_s, received, bad = run_fill(["zipf"])
        filled_origin = origin_count()
        origin_delay(self.origin_delay_ms)
        warm = max(2, self.duration // 3)
        run_wrk("zipf.lua", "/", warm, self.conns, [self.zipf_s, "7"])
        origin_reset()
        wrk_res, cpu = self.measured(proc, lambda: run_wrk("zipf.lua", "/", self.duration, self.conns, [self.zipf_s, "42"]))
        res = dict(wrk_res)
        res.update({
            "cpu_pct": cpu, "origin": origin_count(), "fill_s": fill_s, "fill_origin": filled_origin,
            "fill_non200": bad, "warmup_s": warm,
        })
        res["hit_ratio"] = 1.0 - res["origin"] / res["requests"] if res["requests"] else 0.0
        return res

    def w_herd(self, server, proc):
        self.wait_quiet()
        origin_delay(self.herd_delay_ms)
        origin_reset()
        path = f"/api/boards/herd-{server}-{int(time.time())}/contacts?page=1&pageSize=50&filter=all"
        argv = [sys.executable, os.path.join(HERE, "herd.py"), "--port", str(PROXY_PORT), "--path", path,
                "--header", "X-Workspace-ID: wherd", "-n", str(self.herd_n)]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise RuntimeError(f"herd.py failed: {r.stderr[-800:]}")
        res = json.loads(r.stdout.strip().splitlines()[-1])
        time.sleep(0.3)
        res["origin"] = origin_count()
        res["non200"] = res["completed"] - res["statuses"].get("200", 0) + sum(res["errors"].values()) + res["connect_errors"]
        origin_delay(self.origin_delay_ms)
        return res

    def tagcache_stats(self, fields=("entries", "bytes", "evictions", "purges")):
        """The given fields (default entries/bytes/evictions/purges) of tagcache's /stats, or None."""
        try:
            st, _, data = request("GET", ADMIN_PORT, "/stats", {"Authorization": f"Bearer {self.token}"})
            d = json.loads(data)
        except (OSError, ValueError):
            return None
        if st != 200 or not isinstance(d, dict):
            return None
        flat = dict(d)
        for v in d.values():
            if isinstance(v, dict):
                flat.update(v)
        return {k: flat.get(k) for k in fields if k in flat}

    def store_stats(self, server, proc):
        """What a server holds: entries, bytes and evictions where it tells.
        tagcache: /stats (memory tier). nginx: files and their size in the
        cache directory. Varnish: varnishstat (objects, malloc bytes, LRU nukes)."""
        if server == "tagcache":
            return self.tagcache_stats(("entries", "bytes", "evictions", "too_large", "stores", "quota_evictions"))
        if server == "nginx" and getattr(proc, "cache_dir", None):
            files = sum(len(fs) for _, _, fs in os.walk(proc.cache_dir))
            return {"entries": files, "bytes": du_kib(proc.cache_dir) * 1024}
        if server == "varnish" and shutil.which("varnishstat"):
            try:
                r = subprocess.run(["varnishstat", "-n", os.path.join(proc.cwd, "varnish"), "-1", "-j"],
                                   capture_output=True, text=True, timeout=20)
                d = json.loads(r.stdout)
            except (OSError, ValueError, subprocess.TimeoutExpired):
                return None
            counters = d.get("counters", d)  # the JSON layout differs between Varnish versions

            def val(name):
                v = counters.get(name)
                return v.get("value") if isinstance(v, dict) else None
            out = {"entries": val("MAIN.n_object"), "bytes": val("SMA.s0.g_bytes"), "evictions": val("MAIN.n_lru_nuked")}
            return {k: v for k, v in out.items() if v is not None} or None
        return None

    def w_full(self, server, proc):
        """Memory with a full store: more distinct entries than 256 MiB holds
        (FULL_CONTACTS ~20 KB contact details, then the 50,000 ~2 KB Zipf list
        keys, each once, origin delay 0), then the measured Zipf run of (b)
        to show the full cache still serves."""
        origin_delay(0)
        origin_reset()
        n = self.full_contacts
        c_s, c_recv, c_bad = run_fill(["contacts", str(n)], limit_s=self.full_fill_limit)
        c_origin = origin_count()
        # The last contact again, then under another workspace: HIT, then MISS
        # when the server caches contact details keyed by X-Workspace-ID.
        last = f"/api/contacts/c{n - 1}"
        contact_check = [cache_status(PROXY_PORT, last, f"w{(n - 1) % 50}")[0],
                         cache_status(PROXY_PORT, last, "wother")[0]]
        log(f"full/{server}: {n:,} contacts filled in {c_s:.1f} s (origin {c_origin:,}, non-200 {c_bad}), "
            f"last contact again / other workspace {'/'.join(contact_check)}, peak RSS {proc.peak_rss_kib() / 1024:.1f} MiB")
        origin_reset()
        l_s, l_recv, l_bad = run_fill(["zipf"], limit_s=self.full_fill_limit)
        l_origin = origin_count()
        res = {
            "contacts": n, "fill_contacts_s": c_s, "fill_contacts_origin": c_origin, "fill_contacts_non200": c_bad,
            "fill_lists_s": l_s, "fill_lists_origin": l_origin, "fill_lists_non200": l_bad,
            "fill_s": c_s + l_s, "fill_non200": c_bad + l_bad, "contact_check": contact_check,
            "rss_fill_mib": proc.peak_rss_kib() / 1024.0, "rss_now_fill_mib": proc.rss_kib() / 1024.0,
            "store_fill": self.store_stats(server, proc),
        }
        if getattr(proc, "cache_dir", None):
            res["tmpfs_fill_mib"] = du_kib(proc.cache_dir) / 1024.0
        log(f"full/{server}: lists filled in {l_s:.1f} s (origin {l_origin:,}, non-200 {l_bad}); "
            f"peak RSS {res['rss_fill_mib']:.1f} MiB; store {res['store_fill']}")
        origin_delay(self.origin_delay_ms)
        origin_reset()
        wrk_res, cpu = self.measured(proc, lambda: run_wrk("zipf.lua", "/", self.duration, self.conns, [self.zipf_s, "42"]))
        res.update(wrk_res)
        res.update({"cpu_pct": cpu, "origin": origin_count(), "rss_now_mib": proc.rss_kib() / 1024.0,
                    "store_end": self.store_stats(server, proc)})
        res["hit_ratio"] = 1.0 - res["origin"] / res["requests"] if res["requests"] else 0.0
        return res

    def purge(self, server, board):
        t0 = time.perf_counter()
        if server == "tagcache":
            body = json.dumps({"tags": [f"board:wpurge:{board}"]})
            st, _, data = request("POST", ADMIN_PORT, "/purge", {
                "Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}, body, timeout=120)
        elif server == "varnish":
            st, _, data = request("PURGE", PROXY_PORT, "/", {"xkey-purge": f"board-{board}"}, timeout=120)
        else:
            raise ValueError(server)
        ms = (time.perf_counter() - t0) * 1000.0
        text = data.decode("utf-8", "replace").strip()
        if "<title>" in text:  # Varnish synth page
            text = text.split("<title>", 1)[1].split("</title>", 1)[0]
        return ms, st, " ".join(text.split())[:200]

    def w_purge(self, server, proc):
        out = {"sizes": {}}
        origin_delay(0)
        for n in self.purge_sizes:
            board = f"purge{n}"
            origin_reset()
            fill_s, received, bad = run_fill(["purge", board, str(n)])
            filled = origin_count()
            samples = sorted({0, n // 2, n - 1})
            paths = [f"/api/boards/{board}/contacts?page={i + 1}&pageSize=10&filter=all" for i in samples]
            before = [cache_status(PROXY_PORT, p, "wpurge")[0] for p in paths]
            stats_before = self.tagcache_stats() if server == "tagcache" else None
            ms, st, body = self.purge(server, board)
            stats_after = self.tagcache_stats() if server == "tagcache" else None
            after = [cache_status(PROXY_PORT, p, "wpurge")[0] for p in paths]
            # And again: the refetched entries should be cached anew.
            again = [cache_status(PROXY_PORT, p, "wpurge")[0] for p in paths]
            rec = {
                "fill_s": fill_s, "fill_origin": filled, "fill_non200": bad, "before": before,
                "purge_ms": ms, "purge_status": st, "purge_body": body, "after": after, "again": again,
            }
            if stats_before is not None:
                rec["stats_before"] = stats_before
                rec["stats_after"] = stats_after
            out["sizes"][str(n)] = rec
            log(f"purge/{server} n={n}: fill {fill_s:.1f}s origin={filled} before={before} "
                f"purge {ms:.2f} ms ({st} {body[:80]}) after={after} again={again}")
        origin_delay(self.origin_delay_ms)
        return out

    # --- L2 ----------------------------------------------------------------
    def l2_variant(self):
        """The first Redis-only storage block this build's `tagcache check` accepts, or None."""
        d = self.workdir("l2-check")
        first_err = None
        for name in L2_VARIANTS:
            cfg = os.path.join(d, f"{name}.yaml")
            with open(cfg, "w") as f:
                f.write(self.tagcache_config(variant_storage(name)))
            r = subprocess.run([self.tagcache_bin, "check", "-c", cfg], capture_output=True, text=True,
                               env=dict(os.environ, TAGCACHE_ADMIN_TOKEN=self.token), timeout=30)
            if r.returncode == 0:
                return name
            if first_err is None:
                first_err = (r.stdout + r.stderr).strip()
        self.l2_error = first_err
        return None

    def run_l2(self, placement="core"):
        """L2 hits with Redis on the server's core over loopback TCP ("core":
        Redis's CPU is charged to the server), on the same core over a unix
        socket ("unix": a Redis on the same host), or on the load core
        ("apart": as in production, where Redis is a service of its own
        shared by instances)."""
        apart = placement == "apart"
        key = (L2_KEYS[placement], "tagcache")
        if not shutil.which("redis-server"):
            self.results[key] = {"skipped": "redis-server is not installed"}
            return
        variant = self.l2_variant()
        if variant is None:
            msg = "L2 not available in this build"
            print(msg, flush=True)
            self.results[key] = {"skipped": msg, "check": (self.l2_error or "")[:600]}
            return
        d = self.workdir("redis")
        argv = ["redis-server", "--bind", HOST, "--port", str(REDIS_PORT), "--save", "", "--appendonly", "no", "--dir", d]
        if placement == "unix":
            sock = os.path.join(d, "redis.sock")
            argv += ["--unixsocket", sock, "--unixsocketperm", "777"]
            variant = f"redis-unix:{sock}"
        if apart and self.pinned:
            argv = ["taskset", "-c", str(self.load_cpu)] + argv
        elif not apart:
            argv = self.pin(argv)
        redis = Proc("redis", argv, d)
        on_core0 = [] if apart else [redis]
        if apart:
            self.extra_core1 = [redis]
        try:
            if not wait_port(REDIS_PORT, redis):
                raise RuntimeError(f"redis did not start:\n{redis.tail()}")
            proc = self.start("tagcache", variant)
            try:
                origin_delay(self.origin_delay_ms)
                origin_reset()
                first, _, _ = cache_status(PROXY_PORT, HOT_PATH, HOT_WS)
                second, h, _ = cache_status(PROXY_PORT, HOT_PATH, HOT_WS)
                layer = h.get("x-cache-layer", "-")
                self.wait_quiet()
                hz = os.sysconf("SC_CLK_TCK")
                c0 = proc.cpu_ticks() + redis.cpu_ticks()
                t0 = time.perf_counter()
                res = run_wrk("hot.lua", HOT_PATH, self.duration, self.conns)
                cpu = 100.0 * (proc.cpu_ticks() + redis.cpu_ticks() - c0) / hz / (time.perf_counter() - t0)
                res.update({"cpu_pct": cpu, "origin": origin_count(), "first": first, "second": second, "layer": layer,
                            "variant": variant, "apart": apart})
                res.update(self.probe_1conn([proc] + on_core0, HOT_PATH))
                res["origin"] = origin_count()
                res["redis_rss_mib"] = redis.peak_rss_kib() / 1024.0
                self.finish(key, proc, res)
            finally:
                proc.stop()
        finally:
            self.extra_core1 = []
            redis.stop()

    # --- main loops ----------------------------------------------------------
    def run_workload(self, w, server):
        if w == "purge" and server == "nginx":
            self.results[("purge", "nginx")] = {"skipped": "n/a: nginx (open source) has no tag purge"}
            return
        log(f"== {w}: {server}")
        try:
            proc = self.start(server)
        except Exception as e:  # noqa: BLE001 - report and go on with the next one
            self.results[(w, server)] = {"failed": str(e)[:1500]}
            log(f"{server} failed to start: {e}")
            return
        try:
            res = getattr(self, f"w_{w}")(server, proc)
            if not proc.alive():
                res["crashed"] = proc.tail(15)
            self.finish((w, server), proc, res)
        except Exception as e:  # noqa: BLE001
            self.results[(w, server)] = {"failed": f"{type(e).__name__}: {e}"[:1500], "log": proc.tail(15)}
            log(f"{server}/{w} failed: {e}")
        finally:
            proc.stop()

    def run_ceiling(self):
        for name in ["static", "nginx-static"]:
            if name == "nginx-static" and not shutil.which("nginx"):
                continue
            log(f"== ceiling: {name}")
            try:
                proc = self.start(name)
            except Exception as e:  # noqa: BLE001
                self.results[("ceiling", name)] = {"failed": str(e)[:800]}
                continue
            try:
                res, cpu = self.measured(proc, lambda: run_wrk("hot.lua", HOT_PATH, self.duration, self.conns))
                res["cpu_pct"] = cpu
                self.finish(("ceiling", name), proc, res)
            finally:
                proc.stop()

    def snapshot_binaries(self):
        """Copies the binaries into the scratch directory, so that a rebuild
        during the run cannot swap them between workloads."""
        d = os.path.join(self.tmp, "bin")
        os.makedirs(d, exist_ok=True)
        os.chmod(d, 0o755)
        for attr in ("tagcache_bin", "origin_bin"):
            src = getattr(self, attr)
            if os.path.exists(src):
                dst = os.path.join(d, os.path.basename(src))
                shutil.copy2(src, dst)
                setattr(self, attr, dst)

    def check_tools(self):
        missing = []
        exes = [self.origin_bin] + ([self.tagcache_bin] if "tagcache" in self.servers else [])
        for exe in exes:
            if not os.access(exe, os.X_OK):
                missing.append(exe)
        needed = ["wrk"] if not self.smoke else []
        if "nginx" in self.servers or "ceiling" in self.workloads:
            needed.append("nginx")
        if "varnish" in self.servers:
            needed.append("varnishd")
        missing += [t for t in needed if not shutil.which(t)]
        if missing:
            raise SystemExit("missing: " + ", ".join(missing))

    def main(self):
        choose_ports()
        self.check_tools()
        self.snapshot_binaries()
        self.pin_self()
        self.raise_priority()
        self.started = datetime.datetime.now(datetime.timezone.utc)
        self.start_origin()
        if self.smoke:
            return self.smoke_main()
        # Workload by workload, all servers back to back: whatever else runs on
        # the machine then disturbs the servers compared in one row alike.
        for w in ["hot", "zipf", "herd", "purge", "full"]:
            if w in self.workloads:
                # (a) and (b) in rounds, the servers taking turns: a slow
                # spell of the VM then hits one round of every server rather
                # than all of one server's runs.
                rounds = self.rounds if w in ("hot", "zipf") else 1
                runs = {}
                for _ in range(rounds):
                    for server in self.servers:
                        self.run_workload(w, server)
                        runs.setdefault(server, []).append(self.results.get((w, server), {}))
                if rounds > 1:
                    for server, rs in runs.items():
                        self.results[(w, server)] = median_round(rs)
            if w == "hot" and "ceiling" in self.workloads:
                self.run_ceiling()
        if "l2" in self.workloads and "tagcache" in self.servers:
            for placement in L2_KEYS:
                try:
                    self.run_l2(placement)
                except Exception as e:  # noqa: BLE001
                    self.results[(L2_KEYS[placement], "tagcache")] = {"failed": f"{type(e).__name__}: {e}"[:1500]}
        self.finished = datetime.datetime.now(datetime.timezone.utc)
        md = self.markdown()
        out = os.environ.get("RESULTS") or os.path.join(HERE, "results", "latest.md")
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with open(out, "w") as f:
            f.write(md)
        with open(os.path.splitext(out)[0] + ".json", "w") as f:
            json.dump({f"{w}/{s}": r for (w, s), r in self.results.items()}, f, indent=1, sort_keys=True)
        print(md)
        log(f"wrote {out}")
        return 0

    def smoke_main(self):
        proc = self.start("tagcache")
        try:
            res = self.w_hot("tagcache", proc)
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
        print(f"smoke ok: X-Cache-Status HIT; {res['rps']:.0f} req/s over {self.duration}s, "
              f"origin requests {res['origin']}", flush=True)
        return 0

    # --- report ------------------------------------------------------------
    def markdown(self):
        peers = [s for s in self.servers if s != "tagcache"]
        has_tc = "tagcache" in self.servers
        L = []
        L.append("# tagcache load benchmark: latest results")
        L.append("")
        L.append(f"Run {self.started:%Y-%m-%d %H:%M} UTC, {(self.finished - self.started).total_seconds():.0f} s in all. "
                 "Produced by `bench/run.sh`; method in `docs/benchmarks.md`.")
        L.append("")
        L.append(f"- Machine: {machine_line()}")
        L.append(f"- Versions: {versions_line(self.tagcache_bin)}")
        L.append(f"- Pinning: {'server under test on core 0; wrk, herd client, origin and driver on core 1' if self.pinned else 'none'}"
                 f"{f'; all at nice {self.nice}' if self.nice else ''}")
        L.append(f"- Load: wrk 1 thread, {self.conns} keep-alive connections, {self.duration} s per measured run; "
                 f"origin delay {self.origin_delay_ms} ms per miss; herd {self.herd_n} requests with origin delay {self.herd_delay_ms} ms; "
                 f"Zipf s={self.zipf_s} over 50,000 keys; tagcache hits also with 1 connection for "
                 f"{max(1, min(PROBE_SECONDS, self.duration))} s; (a) and (b) in {self.rounds} round(s), "
                 f"the servers taking turns, each server's median round reported")
        L.append("- Every server: 256 MiB of cache memory, TTL 300 s, 1 worker thread/process, restarted empty before each workload.")
        L.append("")

        def r(w, s):
            return self.results.get((w, s), {})

        def cell(w, s, field, scale=1.0, digits=0):
            d = r(w, s)
            if "skipped" in d:
                return "n/a"
            if "failed" in d:
                return "failed"
            v = d.get(field)
            if v is None:
                return "-"
            return f"{v * scale:,.{digits}f}"

        def ratio(w, s, field, scale=1.0):
            a, b = r(w, "tagcache").get(field), r(w, s).get(field)
            if a is None or b is None or not isinstance(a, (int, float)) or not isinstance(b, (int, float)) or b == 0:
                return "-"
            return f"{a / b:.2f}"

        cols = (["tagcache"] if has_tc else []) + peers
        ratio_cols = [f"tagcache ÷ {p}" for p in peers] if has_tc else []
        L.append("## Results (same run)")
        L.append("")
        L.append("Ratios are tagcache divided by the peer: above 1 is better for req/s, below 1 is better for latency, "
                 "RSS and origin requests.")
        L.append("")
        L.append("| workload | metric | " + " | ".join(cols + ratio_cols) + " |")
        L.append("|---|---|" + "---:|" * (len(cols) + len(ratio_cols)))
        rows = []
        for w, wname in [("hot", "(a) hot key"), ("zipf", "(b) Zipf 50k keys")]:
            if w not in self.workloads:
                continue
            wrows = [
                (w, wname, "req/s", "rps", 1, 0, True),
                (w, wname, "p50 ms", "p50", 1e-3, 2, True),
                (w, wname, "p99 ms", "p99", 1e-3, 2, True),
                (w, wname, "p99.9 ms", "p999", 1e-3, 2, True),
                (w, wname, "origin requests", "origin", 1, 0, False),
                (w, wname, "server CPU % of a core", "cpu_pct", 1, 0, True),
                (w, wname, "others' CPU % on that core", "foreign_cpu_pct", 1, 0, False),
                (w, wname, "wrk+origin CPU % on the load core", "load_cpu_pct", 1, 0, False),
                (w, wname, "others' CPU % on the load core", "foreign_load_cpu_pct", 1, 0, False),
                (w, wname, "peak RSS MiB", "rss_mib", 1, 1, True),
            ]
            if w == "hot":
                # Unsaturated: one connection, so no queueing behind the others.
                wrows[4:4] = [
                    (w, wname, "req/s, 1 connection", "lat1_rps", 1, 0, False),
                    (w, wname, "p50 ms, 1 connection", "lat1_p50", 1e-3, 3, False),
                    (w, wname, "p99 ms, 1 connection", "lat1_p99", 1e-3, 3, False),
                    (w, wname, "p99.9 ms, 1 connection", "lat1_p999", 1e-3, 3, False),
                ]
            if w == "zipf":
                wrows.insert(len(wrows) - 3, (w, wname, "hit ratio %", "hit_ratio", 100, 2, False))
                wrows.append((w, wname, "fill 50k keys, s", "fill_s", 1, 1, True))
            rows += wrows
        if "herd" in self.workloads:
            wname = f"(c) cold herd x{self.herd_n}"
            rows += [
                ("herd", wname, "origin requests", "origin", 1, 0, True),
                ("herd", wname, "non-200 / failed", "non200", 1, 0, False),
                ("herd", wname, "p50 ms", "p50_ms", 1, 1, True),
                ("herd", wname, "p99 ms", "p99_ms", 1, 1, True),
                ("herd", wname, "max ms", "max_ms", 1, 1, True),
                ("herd", wname, "peak RSS MiB", "rss_mib", 1, 1, True),
            ]
        for (w, wname, metric, field, scale, digits, want_ratio) in rows:
            vals = [cell(w, s, field, scale, digits) for s in cols]
            rats = [ratio(w, p, field) if want_ratio else "" for p in peers] if has_tc else []
            L.append(f"| {wname} | {metric} | " + " | ".join(vals + rats) + " |")
        if "purge" in self.workloads:
            for n in self.purge_sizes:
                wname = f"(d) purge 1 tag = {n:,} entries"
                for metric, field, digits in [("purge request ms", "purge_ms", 2), ("fill s", "fill_s", 1)]:
                    vals = []
                    nums = {}
                    for s in cols:
                        d = r("purge", s)
                        if "skipped" in d:
                            vals.append("n/a")
                            continue
                        if "failed" in d:
                            vals.append("failed")
                            continue
                        rec = d.get("sizes", {}).get(str(n))
                        if rec is None:
                            vals.append("-")
                            continue
                        nums[s] = rec[field]
                        vals.append(f"{rec[field]:,.{digits}f}")
                    rats = []
                    if has_tc:
                        for p in peers:
                            if "tagcache" in nums and p in nums and nums[p]:
                                rats.append(f"{nums['tagcache'] / nums[p]:.2f}")
                            else:
                                rats.append("-")
                    L.append(f"| {wname} | {metric} | " + " | ".join(vals + rats) + " |")
                vals = []
                for s in cols:
                    rec = r("purge", s).get("sizes", {}).get(str(n))
                    if "skipped" in r("purge", s):
                        vals.append("n/a")
                    elif rec is None:
                        vals.append("-")
                    else:
                        vals.append(f"{'/'.join(rec['before'])} → {'/'.join(rec['after'])}")
                L.append(f"| {wname} | samples before → after | " + " | ".join(vals + [""] * len(ratio_cols)) + " |")
        L.append("")

        if "ceiling" in self.workloads:
            L.append("## Ceiling: a bare static responder on the same core")
            L.append("")
            L.append("Same wrk settings as (a), answering a fixed 2000-byte body without any proxying. "
                     "`bench_origin --static` is hyper on a 1-thread tokio runtime; `nginx return 200` is one nginx worker.")
            L.append("")
            L.append("| responder | req/s | p50 ms | p99 ms | p99.9 ms | server CPU % | tagcache (a) as % of it |")
            L.append("|---|---:|---:|---:|---:|---:|---:|")
            for name, label in [("static", "bench_origin --static (hyper)"), ("nginx-static", "nginx `return 200`")]:
                d = r("ceiling", name)
                if not d:
                    continue
                if "failed" in d:
                    L.append(f"| {label} | failed | | | | | |")
                    continue
                tc = r("hot", "tagcache").get("rps")
                pct = f"{100 * tc / d['rps']:.0f} %" if tc and d.get("rps") else "-"
                L.append(f"| {label} | {d['rps']:,.0f} | {d['p50'] / 1e3:.2f} | {d['p99'] / 1e3:.2f} | {d['p999'] / 1e3:.2f} | "
                         f"{d['cpu_pct']:.0f} | {pct} |")
            L.append("")

        if "full" in self.workloads:
            L.extend(self.markdown_full(cols))

        if "l2" in self.workloads and has_tc:
            L.append("## (e) tagcache L2 (Redis) hits, memory tier off")
            L.append("")
            L.append(f"Saturated: wrk with {self.conns} connections as in (a). 1 connection: the same hot key right "
                     "after, so a hit does not queue behind other requests. Redis runs three times: on the server's "
                     "core over loopback TCP (its CPU is charged to tagcache: the strict reading), on the same core "
                     "over a unix socket (`url: unix:///...`, for a Redis on the same host), and on the load core "
                     "over TCP (as in production, where Redis is a service of its own that many instances share).")
            L.append("")
            mem = r("hot", "tagcache")
            rows, notes = [], []
            for key, place in (("l2", "server core, TCP"), ("l2-unix", "server core, unix socket"),
                               ("l2-apart", "load core, TCP")):
                d = r(key, "tagcache")
                if "skipped" in d:
                    notes.append(f"Redis on the {place}: {d['skipped']}.")
                    if d.get("check"):
                        notes.extend(["", "`tagcache check` said:", "", "```", d["check"], "```"])
                    continue
                if "failed" in d:
                    notes.append(f"Redis on the {place}: failed: `{d['failed']}`")
                    continue
                if not d:
                    continue
                share = f"{100 * d['rps'] / mem['rps']:.0f} %" if mem.get("rps") else "-"
                rows.append(f"| {place} | {self.conns} | {d['rps']:,.0f} | {share} | {d['p50'] / 1e3:.2f} | "
                            f"{d['p99'] / 1e3:.2f} | {d['p999'] / 1e3:.2f} | {d['second']} / {d['layer']} | "
                            f"{d['origin']} | {d['cpu_pct']:.0f} | {d['rss_mib']:.1f} / {d['redis_rss_mib']:.1f} |")
                if "lat1_p99" in d:
                    rows.append(f"| {place} | 1 | {d['lat1_rps']:,.0f} | | {d['lat1_p50'] / 1e3:.3f} | "
                                f"{d['lat1_p99'] / 1e3:.3f} | {d['lat1_p999'] / 1e3:.3f} | | | {d['lat1_cpu_pct']:.0f} | |")
                    p99 = d["lat1_p99"] / 1e3
                    verdict = "met" if p99 < GOAL_L2_P99_MS else "not met"
                    notes.append(f"Redis on the {place}: goal \"L2 hit p99 < {GOAL_L2_P99_MS:g} ms\", read at 1 "
                                 f"connection: p99 {p99:.3f} ms = {p99 / GOAL_L2_P99_MS:.2f} × the goal: **{verdict}**.")
            if rows:
                L.append("| Redis on | connections | req/s | of memory-hit req/s (a) | p50 ms | p99 ms | p99.9 ms | "
                         "X-Cache-Status / X-Cache-Layer of 2nd request | origin requests | CPU % (tagcache+redis) | "
                         "RSS MiB tagcache / redis |")
                L.append("|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|")
                L.extend(rows)
                L.append("")
            if "lat1_p99" in mem:
                notes.append(f"A memory-tier hit at 1 connection, from (a): p50 {mem['lat1_p50'] / 1e3:.3f} ms, "
                             f"p99 {mem['lat1_p99'] / 1e3:.3f} ms, p99.9 {mem['lat1_p999'] / 1e3:.3f} ms.")
            for n in notes:
                L.append(f"- {n}" if n.startswith(("Redis on", "A memory")) else n)
            L.append("")

        L.append("## Checks and details")
        L.append("")
        for (w, s), d in sorted(self.results.items()):
            if "failed" in d:
                L.append(f"- **{w}/{s} failed**: `{d['failed'].splitlines()[0] if d['failed'] else ''}`")
                if d.get("log"):
                    L.append("  ```")
                    L.extend("  " + x for x in d["log"].splitlines()[-8:])
                    L.append("  ```")
            if d.get("crashed") is not None:
                L.append(f"- **{w}/{s}: the server exited during the run**")
            if d.get("rounds_rps"):
                rr = " / ".join("-" if x is None else f"{x:,.0f}" for x in d["rounds_rps"])
                L.append(f"- {w}/{s}: req/s of each round, in order: {rr}; the median round is reported")
            if w in ("hot", "l2", "l2-unix", "l2-apart") and "second" in d:
                L.append(f"- {w}/{s}: first request `{d.get('first', '-')}`, second `{d['second']}`; "
                         f"{d['requests']:,} requests, {d['errors']} socket errors, {d['err_status']} HTTP errors")
            if w == "zipf" and "requests" in d:
                L.append(f"- zipf/{s}: fill {d['fill_s']:.1f} s ({d['fill_origin']:,} origin requests, {d['fill_non200']} non-200); "
                         f"{d['requests']:,} requests, {d['errors']} socket errors, {d['err_status']} HTTP errors")
            if w == "herd" and "statuses" in d:
                L.append(f"- herd/{s}: {d['completed']}/{d['requested']} completed, statuses {d['statuses']}, "
                         f"X-Cache-Status {d['cache_status']}, errors {d['errors']}, wall {d['wall_ms']:.0f} ms")
            if w == "purge" and "sizes" in d:
                for n, rec in d["sizes"].items():
                    L.append(f"- purge/{s} {int(n):,} entries: fill {rec['fill_origin']:,} origin requests; purge answered "
                             f"{rec['purge_status']} `{rec['purge_body'][:160]}`; samples {rec['before']} → {rec['after']} → {rec['again']}")
                    if rec.get("stats_before") is not None or rec.get("stats_after") is not None:
                        L.append(f"  - tagcache /stats right before → right after the purge: {rec.get('stats_before')} → {rec.get('stats_after')}")
            if w == "full" and "fill_contacts_s" in d:
                L.append(f"- full/{s}: fill {d['contacts']:,} contacts {d['fill_contacts_s']:.1f} s "
                         f"({d['fill_contacts_origin']:,} origin requests, {d['fill_contacts_non200']} non-200), "
                         f"50,000 lists {d['fill_lists_s']:.1f} s ({d['fill_lists_origin']:,} origin requests, "
                         f"{d['fill_lists_non200']} non-200); RSS now {d['rss_now_fill_mib']:.1f} MiB after the fill, "
                         f"{d['rss_now_mib']:.1f} MiB at the end; Zipf {d['requests']:,} requests, {d['errors']} socket errors, "
                         f"{d['err_status']} HTTP errors")
                L.append(f"  - last contact again / under another workspace: {' / '.join(d.get('contact_check', []))}; "
                         f"store after the fill → after the Zipf run: {d.get('store_fill')} → {d.get('store_end')}")
            if w in ("hot", "l2", "l2-unix", "l2-apart") and "lat1_requests" in d:
                L.append(f"- {w}/{s} 1 connection: {d['lat1_requests']:,} requests in {d['lat1_s']} s, {d['lat1_errors']} errors, "
                         f"p90 {d['lat1_p90'] / 1e3:.3f} ms, max {d['lat1_max'] / 1e3:.3f} ms; server CPU {d['lat1_cpu_pct']:.0f} %, "
                         f"others' CPU {d.get('lat1_foreign_cpu_pct', 0):.0f} % / {d.get('lat1_foreign_load_cpu_pct', 0):.0f} % "
                         "on the server / load core")
            if "tmpfs_mib" in d:
                L.append(f"- {w}/{s}: nginx cache files on tmpfs {d['tmpfs_mib']:.1f} MiB (not in its RSS)")
        for n in self.notes + self.auto_notes():
            L.append(f"- {n}")
        L.append("")
        return "\n".join(L)

    def markdown_full(self, cols):
        """The section of workload full: memory with the store full."""
        L = []
        n = self.full_contacts
        L.append(f"## Full cache: memory with {STORE_MIB} MiB of entries")
        L.append("")
        L.append(f"Each server, restarted empty, is sent {n:,} distinct contact details (`/api/contacts/c{{i}}`, ~20 KB, "
                 f"X-Workspace-ID w0…w49: ~{n * 20 / 1000:.0f} MB), then the 50,000 Zipf list keys of (b) (~2 KB: ~100 MB), "
                 f"each once, with origin delay 0 and 100 connections: more than its {STORE_MIB} MiB hold. Then the measured "
                 f"Zipf run of (b), {self.duration} s with origin delay {self.origin_delay_ms} ms and no warm-up: evicted keys "
                 "are misses. Peak RSS is the high-water mark of all the server's processes, RSS at end their resident "
                 "memory after the Zipf run; nginx keeps cached bodies in files on tmpfs, outside its RSS, counted in "
                 "\"store MiB\". Store entries and evictions are read after the fill: tagcache `/stats` (memory tier), "
                 "nginx cache files, Varnish `varnishstat` (objects, malloc bytes, LRU nuked).")
        L.append("")
        L.append(f"| server | fill s (contacts + lists) | fill non-200 | peak RSS MiB after fill | peak RSS MiB at end | "
                 f"RSS MiB at end | store entries | store MiB after fill / at end | evictions | Zipf req/s | Zipf hit ratio % | Zipf p99 ms | "
                 f"tagcache vs goal RSS ≤ {GOAL_RSS_MIB} MiB |")
        L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        for s in cols:
            d = self.results.get(("full", s), {})
            if not d:
                continue
            if "failed" in d or "fill_contacts_s" not in d:
                L.append(f"| {s} | failed |" + " |" * 11)
                continue
            st = d.get("store_fill") or {}
            st_end = d.get("store_end") or {}

            def num(v, scale=1.0, digits=0):
                return "-" if v is None else f"{v * scale:,.{digits}f}"
            goal = "-"
            if s == "tagcache":
                ratio = d["rss_mib"] / GOAL_RSS_MIB
                goal = f"{ratio:.2f} × goal: {'met' if d['rss_mib'] <= GOAL_RSS_MIB else 'not met'}"
            L.append(f"| {s} | {d['fill_contacts_s']:.1f} + {d['fill_lists_s']:.1f} | {d['fill_non200']} | "
                     f"{d['rss_fill_mib']:.1f} | {d['rss_mib']:.1f} | {d['rss_now_mib']:.1f} | {num(st.get('entries'))} | "
                     f"{num(st.get('bytes'), 1 / 2**20, 1)} / {num(st_end.get('bytes'), 1 / 2**20, 1)} | "
                     f"{num(st.get('evictions'))} | {d['rps']:,.0f} | "
                     f"{100 * d['hit_ratio']:.2f} | {d['p99'] / 1e3:.2f} | {goal} |")
        L.append("")
        d = self.results.get(("full", "tagcache"), {})
        if "rss_mib" in d and "fill_contacts_s" in d:
            st = d.get("store_fill") or {}
            held = st.get("bytes")
            full = held is not None and held >= 0.9 * STORE_MIB * 2**20
            verdict = "met" if d["rss_mib"] <= GOAL_RSS_MIB else "not met"
            line = (f"Goal \"RSS ≤ {GOAL_RSS_MIB} MiB with a full {STORE_MIB} MiB store\": tagcache peak RSS "
                    f"{d['rss_mib']:.1f} MiB = {d['rss_mib'] / GOAL_RSS_MIB:.2f} × {GOAL_RSS_MIB} MiB: **{verdict}**")
            if held is not None:
                line += f"; the store held {held / 2**20:.1f} MiB in {st.get('entries', 0):,} entries after the fill"
                if not full:
                    line += f" (under 90 % of {STORE_MIB} MiB: not a full store)"
            L.append(line + ".")
            L.append("")
        return L

    def auto_notes(self):
        notes = []
        for (w, s), d in self.results.items():
            if w == "hot" and d.get("second") and d["second"] != "HIT":
                notes.append(f"**{s}: the second request for the hot key was `{d['second']}`, not HIT.**")
            if w == "hot" and d.get("origin", 0) > 1:
                notes.append(f"**{s}: the hot key reached the origin {d['origin']} times.**")
            if w == "zipf" and d.get("origin", 0) > 0:
                notes.append(f"**{s}: {d['origin']} origin requests during the measured Zipf run "
                             "(entries missing after a full fill: eviction, expiry or keying).**")
            if w == "full" and "fill_contacts_s" in d:
                if d.get("fill_non200"):
                    notes.append(f"**full/{s}: {d['fill_non200']} non-200 answers during the fill.**")
                if d.get("contact_check") and d["contact_check"] != ["HIT", "MISS"]:
                    notes.append(f"**full/{s}: the last contact asked again, then under another workspace, was "
                                 f"{' / '.join(d['contact_check'])}, not HIT / MISS (contact details not cached per workspace).**")
                st = d.get("store_fill") or {}
                if s == "tagcache" and st.get("bytes") is not None and st["bytes"] < 0.9 * STORE_MIB * 2**20:
                    notes.append(f"**full/tagcache: after the fill the memory tier held {st['bytes'] / 2**20:.1f} MiB, "
                                 f"under 90 % of {STORE_MIB} MiB: the store was not full.**")
                if s == "tagcache" and st.get("evictions") == 0:
                    notes.append("**full/tagcache: no evictions after offering more than the store holds.**")
            if w in ("hot", "l2", "l2-unix", "l2-apart") and d.get("lat1_errors"):
                notes.append(f"**{w}/{s}: {d['lat1_errors']} errors in the 1-connection run.**")
            if w in ("hot", "l2", "l2-unix", "l2-apart") and is_noisy(d.get("lat1_foreign_cpu_pct"), d.get("lat1_foreign_load_cpu_pct"),
                                                d.get("lat1_cpu_pct")):
                notes.append(f"**{w}/{s}: other processes used {d['lat1_foreign_cpu_pct']:.0f} % of the server's core and "
                             f"{d['lat1_foreign_load_cpu_pct']:.0f} % of the load generator's core during the 1-connection run: "
                             "its tail latencies are not comparable.**")
            if w in ("hot", "zipf", "full") and (d.get("errors", 0) or d.get("err_status", 0)):
                notes.append(f"**{w}/{s}: {d['errors']} socket errors and {d['err_status']} HTTP errors under load.**")
            if w == "herd" and d.get("origin", 0) > 1:
                notes.append(f"**herd/{s}: {d['origin']} origin requests for one key (coalescing let them through).**")
            if w == "herd" and d.get("non200", 0):
                notes.append(f"**herd/{s}: {d['non200']} of {d['requested']} requests failed or were not 200.**")
            if w == "purge":
                for n, rec in d.get("sizes", {}).items():
                    if any(x != "MISS" for x in rec["after"]) or rec["purge_status"] != 200:
                        notes.append(f"**purge/{s} {n}: after the purge the samples were {rec['after']} "
                                     f"(purge status {rec['purge_status']}).**")
                    if any(x != "HIT" for x in rec["before"]):
                        notes.append(f"**purge/{s} {n}: before the purge the samples were {rec['before']}, not all HIT.**")
            if is_noisy(d.get("foreign_cpu_pct"), d.get("foreign_load_cpu_pct"), d.get("cpu_pct")):
                notes.append(f"**{w}/{s}: other processes used {d['foreign_cpu_pct']:.0f} % of the server's core and "
                             f"{d.get('foreign_load_cpu_pct') or 0:.0f} % of the load generator's core during the measured "
                             "run: the machine was not quiet, this number is not comparable.**")
            if d.get("cpu_pct") is not None and w in ("hot", "zipf") and d["cpu_pct"] < 85:
                notes.append(f"{w}/{s}: the server used only {d['cpu_pct']:.0f} % of its core: the load generator "
                             "(one wrk thread on the other core) may be the limit here, not the server.")
        return notes


# --------------------------------------------------------------------------
# L2 variants: storage blocks tried in order with `tagcache check`.

L2_VARIANTS = ["redis-url", "redis-address"]
# Where Redis runs in (e), and the result key of each placement.
L2_KEYS = {"core": "l2", "unix": "l2-unix", "apart": "l2-apart"}


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


def variant_storage(variant):
    if variant is None:
        return None
    if variant == "redis-url":
        return f'storage:\n  redis:\n    url: "redis://{HOST}:{REDIS_PORT}"\n'
    if variant == "redis-address":
        return f'storage:\n  redis:\n    address: "{HOST}:{REDIS_PORT}"\n'
    if variant.startswith("redis-unix:"):
        return f'storage:\n  redis:\n    url: "unix://{variant.split(":", 1)[1]}"\n'
    raise ValueError(variant)


def static_body():
    s = '{"static":true,"pad":"'
    s += "x" * (1998 - len(s))
    return s + '"}'


def du_kib(path):
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_blocks * 512
            except OSError:
                pass
    return total // 1024


def fmt_any(v):
    if isinstance(v, float):
        return f"{v:.2f}"
    return str(v)


def machine_line():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = "?"
    try:
        with open("/proc/meminfo") as f:
            mem = f"{int(f.readline().split()[1]) / 1024 / 1024:.0f} GiB"
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs ({model}), {mem} RAM, Linux {platform.release()}"


def versions_line(tagcache_bin):
    def first(argv):
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            txt = (r.stdout + r.stderr).strip().splitlines()
            return txt[0] if txt else "?"
        except OSError:
            return "not installed"
    rev = first(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no", "src"],
                           capture_output=True, text=True).stdout.strip()
    return "; ".join([
        f"{first([tagcache_bin, '--version'])} (git {rev}{', src/ modified' if dirty else ''})",
        first(["nginx", "-v"]),
        first(["varnishd", "-V"]),
        first(["wrk", "-v"]).split(" Copyright")[0],
    ])


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
