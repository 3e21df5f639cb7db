"""Processes: the servers under test, the origin and Redis, each started in a
process group of its own and stopped with the whole group, and the loopback
ports they listen on."""

import http.client
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import host
from settings import log

HERE = os.path.dirname(os.path.abspath(__file__))
HOST = "127.0.0.1"


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
        host.set_autogroup_nice(self.p.pid, host.NICE)
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

    def _status_kib(self, key):
        total = 0
        for pid in self.pids():
            try:
                with open(f"/proc/{pid}/status") as f:
                    for line in f:
                        if line.startswith(key):
                            total += int(line.split()[1])
            except OSError:
                pass
        return total

    def rss_kib(self):
        """Current resident memory of all the group's processes."""
        return self._status_kib("VmRSS:")

    def peak_rss_kib(self):
        """The sum of the group's processes' resident high-water marks."""
        return self._status_kib("VmHWM:")

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


def stop_all():
    """Stops every server still running (on exit, on a signal)."""
    for p in list(Proc.registry):
        try:
            p.stop()
        except Exception:  # noqa: BLE001 - best effort on the way out
            pass


# --------------------------------------------------------------------------
# Ports


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sk:
        sk.bind((HOST, 0))
        return sk.getsockname()[1]


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


class Ports:
    """The ports on 127.0.0.1: proxy (every server under test listens there),
    origin, admin (tagcache's) and redis."""

    # As written in bench/tagcache.yaml, and their environment variables.
    DEFAULTS = {"proxy": 18080, "origin": 18000, "admin": 9091, "redis": 16379}
    ENV = {"proxy": "BENCH_PORT", "origin": "ORIGIN_PORT", "admin": "ADMIN_PORT", "redis": "REDIS_PORT"}

    def __init__(self, proxy, origin, admin, redis):
        self.proxy = proxy
        self.origin = origin
        self.admin = admin
        self.redis = redis

    @classmethod
    def choose(cls):
        """Each port from its environment variable; otherwise the default, or a
        free port when something else listens there."""
        chosen = {}
        for name, default in cls.DEFAULTS.items():
            env = cls.ENV[name]
            if os.environ.get(env, "").strip():
                chosen[name] = int(os.environ[env])
            elif port_open(default):
                new = free_port()
                log(f"port {default} is in use by something else; using {new} for {name}_port")
                chosen[name] = new
            else:
                chosen[name] = default
        return cls(**chosen)


# --------------------------------------------------------------------------
# HTTP to the local processes (a fresh connection each time; loopback only)


def request(method, port, path, headers=None, body=None, timeout=30):
    c = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        c.close()


class Origin:
    """The bench origin (examples/bench_origin.rs) and its control endpoints."""

    def __init__(self, proc, port):
        self.proc = proc
        self.port = port

    def count(self):
        """Origin requests since the last reset."""
        return int(request("GET", self.port, "/__count")[2].decode().strip())

    def bytes(self):
        """Body bytes the origin sent since the last reset."""
        return int(request("GET", self.port, "/__bytes")[2].decode().strip())

    def reset(self):
        """Sets the request and byte counts to 0."""
        request("POST", self.port, "/__reset")

    def delay(self, ms):
        """Sets the delay of every later miss."""
        request("POST", self.port, f"/__delay?ms={int(ms)}")

    def cpu_ticks(self):
        return self.proc.cpu_ticks()


# --------------------------------------------------------------------------
# Servers


def variant_storage(variant, redis_port):
    """The `storage:` block of an L2 variant: Redis by URL, by address, or over
    a unix socket ("redis-unix:PATH"); None keeps the file's own block."""
    if variant is None:
        return None
    if variant == "redis-url":
        return f'storage:\n  redis:\n    url: "redis://{HOST}:{redis_port}"\n'
    if variant == "redis-address":
        return f'storage:\n  redis:\n    address: "{HOST}:{redis_port}"\n'
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


# With a cache size other than the usual 256 MiB (workload pressure), nginx's
# cache manager checks the size every 10 ms and removes up to 1,000 files per
# pass, instead of 100 every 50 ms: with its defaults, a cache filling at a few
# thousand misses per second outgrows max_size several times over before the
# manager catches up, and nginx would be compared with more memory than the others.
NGINX_TIGHT_MANAGER = " manager_files=1000 manager_sleep=10ms manager_threshold=200ms"

# L2 storage blocks, tried in order with `tagcache check`.
L2_VARIANTS = ["redis-url", "redis-address"]


class Servers:
    """Starts the servers under test (tagcache, nginx, Varnish, the static
    responders), the origin and Redis, each in a scratch directory of its own."""

    def __init__(self, cfg, ports, pinning, tmp):
        self.cfg = cfg
        self.ports = ports
        self.pinning = pinning
        self.tmp = tmp
        self.root = os.geteuid() == 0
        self.tagcache_bin = cfg.tagcache_bin
        self.origin_bin = cfg.origin_bin

    def workdir(self, name):
        d = tempfile.mkdtemp(prefix=f"{name}-", dir=self.tmp)
        os.chmod(d, 0o755)
        return d

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

    def start_origin(self):
        port = self.ports.origin
        if not wait_port_free(port, 2):
            raise SystemExit(f"port {port} is in use; stop whatever listens there")
        d = self.workdir("origin")
        p = Proc(
            "origin",
            [self.origin_bin, "--listen", f"{HOST}:{port}", "--delay-ms", str(self.cfg.origin_delay_ms), "--threads", "2"],
            d,
        )
        if not wait_port(port, p):
            raise SystemExit(f"origin did not start:\n{p.tail()}")
        return Origin(p, port)

    def tagcache_config(self, storage_yaml=None, threads=1, memory_mib=256):
        """bench/tagcache.yaml on this run's ports, with `threads` worker
        threads and `memory_mib` of memory tier, and storage_yaml in place of
        its `storage:` block when given."""
        with open(os.path.join(HERE, "tagcache.yaml")) as f:
            text = f.read()
        dflt = Ports.DEFAULTS
        text = (text.replace(f'"{HOST}:{dflt["proxy"]}"', f'"{HOST}:{self.ports.proxy}"')
                .replace(f'"{HOST}:{dflt["origin"]}"', f'"{HOST}:{self.ports.origin}"')
                .replace(f'"{HOST}:{dflt["admin"]}"', f'"{HOST}:{self.ports.admin}"')
                .replace("\n  threads: 1\n", f"\n  threads: {threads}\n")
                .replace("max_size: 256MiB", f"max_size: {memory_mib}MiB"))
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

    def start(self, server, variant=None, threads=1, memory_mib=256):
        """Starts a server on the proxy port and waits until it listens. With
        threads=1 it is pinned to the server's core; with more, it runs on all
        cores with that many worker threads or processes (Varnish: its
        default thread pools). memory_mib is its cache memory."""
        port = self.ports.proxy
        if not wait_port_free(port, 10):
            raise RuntimeError(f"port {port} still in use")
        d = self.workdir(f"{server}{'-' + variant.split(':')[0] if variant else ''}")
        pin = self.pinning.on_server_core if threads == 1 else self.pinning.on_all_cores
        if server == "tagcache":
            cfg = os.path.join(d, "tagcache.yaml")
            with open(cfg, "w") as f:
                f.write(self.tagcache_config(variant_storage(variant, self.ports.redis), threads, memory_mib))
            if not wait_port_free(self.ports.admin, 10):
                raise RuntimeError(f"admin port {self.ports.admin} still in use")
            p = Proc(
                "tagcache",
                pin([self.tagcache_bin, "run", "-c", cfg]),
                d,
                env={"TAGCACHE_ADMIN_TOKEN": self.cfg.token, "TAGCACHE_LOG": os.environ.get("TAGCACHE_LOG", "warn")},
                stop_signal=signal.SIGINT,  # fast shutdown; SIGTERM waits for the grace period
            )
            ok = wait_port(port, p) and wait_port(self.ports.admin, p)
        elif server in ("nginx", "nginx-static"):
            p = self.start_nginx(d, static=(server == "nginx-static"), pin=pin, workers=threads,
                                 memory_mib=memory_mib)
            ok = wait_port(port, p)
        elif server == "varnish":
            p = self.start_varnish(d, pin=pin, one_pool=(threads == 1), memory_mib=memory_mib)
            ok = wait_port(port, p, timeout=30)
        elif server == "static":
            p = Proc(
                "static",
                pin([self.origin_bin, "--static", "--threads", "1", "--listen", f"{HOST}:{port}"]),
                d,
            )
            ok = wait_port(port, p)
        else:
            raise ValueError(server)
        if not ok:
            tail = p.tail()
            p.stop()
            raise RuntimeError(f"{server} did not start; log tail:\n{tail}")
        return p

    def start_nginx(self, d, static=False, pin=None, workers=1, memory_mib=256):
        """nginx with `workers` worker processes and a cache of memory_mib
        (max_size) and a keys zone of an eighth of that (32 MiB for 256: at
        about 8,000 keys per MiB, room for 8 keys per 4 KiB block of
        max_size, so the zone is never the limit)."""
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
            .replace("@PORT@", str(self.ports.proxy))
            .replace("@ORIGIN_PORT@", str(self.ports.origin))
            .replace("@STATIC_BODY@", static_body())
            .replace("@WORKERS@", str(workers))
            .replace("@MAX_SIZE@", f"{memory_mib}m")
            .replace("@KEYS_ZONE@", f"{max(1, memory_mib // 8)}m")
            .replace("@MANAGER@", "" if memory_mib == 256 else NGINX_TIGHT_MANAGER)
        )
        path = os.path.join(d, "nginx.conf")
        with open(path, "w") as f:
            f.write(conf)
        pin = pin or self.pinning.on_server_core
        p = Proc("nginx", pin(["nginx", "-p", d + "/", "-e", os.path.join(d, "error.log"), "-c", path]),
                 d, stop_signal=signal.SIGTERM)
        p.cache_dir = cache_dir
        p.remove_dirs = [cache_dir]
        return p

    def start_varnish(self, d, pin=None, one_pool=True, memory_mib=256):
        """varnishd with `-s malloc,memory_mib`; one thread pool, or its
        defaults (two pools) when one_pool is false."""
        with open(os.path.join(HERE, "conf", "varnish.vcl.in")) as f:
            vcl = f.read().replace("@ORIGIN_PORT@", str(self.ports.origin))
        path = os.path.join(d, "bench.vcl")
        with open(path, "w") as f:
            f.write(vcl)
        os.chmod(path, 0o644)
        argv = [
            "varnishd", "-F", "-n", os.path.join(d, "varnish"), "-a", f"{HOST}:{self.ports.proxy}",
            "-T", f"{HOST}:0", "-f", path, "-s", f"malloc,{memory_mib}m",
        ]
        if one_pool:
            argv += ["-p", "thread_pools=1"]
        if not self.root:
            argv += ["-j", "none"]
        pin = pin or self.pinning.on_server_core
        return Proc("varnish", pin(argv), d, stop_signal=signal.SIGTERM)

    def l2_variant(self):
        """The first Redis-only storage block this build's `tagcache check`
        accepts, and None; or None and what `check` said about the first."""
        d = self.workdir("l2-check")
        first_err = None
        for name in L2_VARIANTS:
            cfg = os.path.join(d, f"{name}.yaml")
            with open(cfg, "w") as f:
                f.write(self.tagcache_config(variant_storage(name, self.ports.redis)))
            r = subprocess.run([self.tagcache_bin, "check", "-c", cfg], capture_output=True, text=True,
                               env=dict(os.environ, TAGCACHE_ADMIN_TOKEN=self.cfg.token), timeout=30)
            if r.returncode == 0:
                return name, None
            if first_err is None:
                first_err = (r.stdout + r.stderr).strip()
        return None, first_err

    def start_redis(self, placement, variant):
        """A redis-server on the server's core ("core", "unix": also on a unix
        socket) or on the load core ("apart"). Returns it with the storage
        variant that reaches it. Does not wait for it to listen."""
        d = self.workdir("redis")
        argv = ["redis-server", "--bind", HOST, "--port", str(self.ports.redis), "--save", "", "--appendonly", "no",
                "--dir", d]
        if placement == "unix":
            sock = os.path.join(d, "redis.sock")
            argv += ["--unixsocket", sock, "--unixsocketperm", "777"]
            variant = f"redis-unix:{sock}"
        if placement == "apart":
            argv = self.pinning.on_load_core(argv)
        else:
            argv = self.pinning.on_server_core(argv)
        return Proc("redis", argv, d), variant
