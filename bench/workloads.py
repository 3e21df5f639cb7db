"""The workloads: what each one sends to a server and what it records. Each
takes the run's context `b` (driver.Bench: settings, ports, servers, meter,
origin, results) and one started server, and returns its result fields."""

import json
import os
import shutil
import subprocess
import threading
import time

import tracegen
from loadgen import cache_status, python_hot_loop, run_fill, run_herd, run_rate, run_replay, run_wrk
from procs import du_kib, request, wait_port
from settings import log

HOT_PATH = "/api/boards/b1/contacts?page=1&pageSize=50&filter=all"
HOT_WS = "w1"

# Where Redis runs in (e), and the result key of each placement.
L2_KEYS = {"core": "l2", "unix": "l2-unix", "apart": "l2-apart"}


def hot(b, server, proc, key="hot"):
    """(a) One hot key under wrk, then (tagcache) with one connection."""
    cfg, port = b.cfg, b.ports.proxy
    b.origin.delay(cfg.origin_delay_ms)
    b.origin.reset()
    first = cache_status(port, HOT_PATH, HOT_WS)[0]
    second = cache_status(port, HOT_PATH, HOT_WS)[0]
    if b.have_wrk:
        wrk_res, cpu = b.meter.measured(proc, lambda: run_wrk(port, "hot.lua", HOT_PATH, cfg.duration, cfg.conns))
    else:
        wrk_res, cpu = b.meter.measured(proc, lambda: python_hot_loop(port, HOT_PATH, HOT_WS, cfg.duration))
        b.notes.append("wrk is not installed: the smoke load was one Python keep-alive connection.")
    res = dict(wrk_res)
    res.update({"cpu_pct": cpu, "origin": b.origin.count(), "first": first, "second": second})
    if server == "tagcache" and b.have_wrk and not cfg.smoke:
        res.update(b.meter.probe_1conn([proc], port, HOT_PATH))
    return res


def zipf(b, server, proc):
    """(b) 50,000 keys filled once, a warm-up, then a Zipf run."""
    cfg, port = b.cfg, b.ports.proxy
    b.origin.delay(0)
    b.origin.reset()
    fill_s, received, bad = run_fill(port, ["zipf"])
    filled_origin = b.origin.count()
    b.origin.delay(cfg.origin_delay_ms)
    warm = max(2, cfg.duration // 3)
    run_wrk(port, "zipf.lua", "/", warm, cfg.conns, [cfg.zipf_s, "7"])
    b.origin.reset()
    wrk_res, cpu = b.meter.measured(proc, lambda: run_wrk(port, "zipf.lua", "/", cfg.duration, cfg.conns, [cfg.zipf_s, "42"]))
    res = dict(wrk_res)
    res.update({
        "cpu_pct": cpu, "origin": b.origin.count(), "fill_s": fill_s, "fill_origin": filled_origin,
        "fill_non200": bad, "warmup_s": warm,
    })
    res["hit_ratio"] = 1.0 - res["origin"] / res["requests"] if res["requests"] else 0.0
    return res


def herd(b, server, proc):
    """(c) HERD_N concurrent requests for one cold key, with a slow origin."""
    cfg = b.cfg
    b.meter.wait_quiet()
    b.origin.delay(cfg.herd_delay_ms)
    b.origin.reset()
    path = f"/api/boards/herd-{server}-{int(time.time())}/contacts?page=1&pageSize=50&filter=all"
    res = run_herd(b.ports.proxy, path, "wherd", cfg.herd_n)
    time.sleep(0.3)
    res["origin"] = b.origin.count()
    res["non200"] = res["completed"] - res["statuses"].get("200", 0) + sum(res["errors"].values()) + res["connect_errors"]
    b.origin.delay(cfg.origin_delay_ms)
    return res


def tagcache_stats(b, fields=("entries", "bytes", "evictions", "purges")):
    """The given fields (default entries/bytes/evictions/purges) of tagcache's /stats, or None."""
    try:
        st, _, data = request("GET", b.ports.admin, "/stats", {"Authorization": f"Bearer {b.cfg.token}"})
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


def store_stats(b, server, proc):
    """What a server holds: entries, bytes and evictions where it tells.
    tagcache: /stats (memory tier). nginx: files and their size in the
    cache directory. Varnish: varnishstat (objects, malloc bytes, LRU nukes)."""
    if server == "tagcache":
        return tagcache_stats(b, ("entries", "bytes", "evictions", "too_large", "stores", "quota_evictions"))
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


def full(b, server, proc):
    """Memory with a full store: more distinct entries than 256 MiB holds
    (FULL_CONTACTS ~20 KB contact details, then the 50,000 ~2 KB Zipf list
    keys, each once, origin delay 0), then the measured Zipf run of (b)
    to show the full cache still serves."""
    cfg, port = b.cfg, b.ports.proxy
    b.origin.delay(0)
    b.origin.reset()
    n = cfg.full_contacts
    c_s, c_recv, c_bad = run_fill(port, ["contacts", str(n)], limit_s=cfg.full_fill_limit)
    c_origin = b.origin.count()
    # The last contact again, then under another workspace: HIT, then MISS
    # when the server caches contact details keyed by X-Workspace-ID.
    last = f"/api/contacts/c{n - 1}"
    contact_check = [cache_status(port, last, f"w{(n - 1) % 50}")[0],
                     cache_status(port, last, "wother")[0]]
    log(f"full/{server}: {n:,} contacts filled in {c_s:.1f} s (origin {c_origin:,}, non-200 {c_bad}), "
        f"last contact again / other workspace {'/'.join(contact_check)}, peak RSS {proc.peak_rss_kib() / 1024:.1f} MiB")
    b.origin.reset()
    l_s, l_recv, l_bad = run_fill(port, ["zipf"], limit_s=cfg.full_fill_limit)
    l_origin = b.origin.count()
    res = {
        "contacts": n, "fill_contacts_s": c_s, "fill_contacts_origin": c_origin, "fill_contacts_non200": c_bad,
        "fill_lists_s": l_s, "fill_lists_origin": l_origin, "fill_lists_non200": l_bad,
        "fill_s": c_s + l_s, "fill_non200": c_bad + l_bad, "contact_check": contact_check,
        "rss_fill_mib": proc.peak_rss_kib() / 1024.0, "rss_now_fill_mib": proc.rss_kib() / 1024.0,
        "store_fill": store_stats(b, server, proc),
    }
    if getattr(proc, "cache_dir", None):
        res["tmpfs_fill_mib"] = du_kib(proc.cache_dir) / 1024.0
    log(f"full/{server}: lists filled in {l_s:.1f} s (origin {l_origin:,}, non-200 {l_bad}); "
        f"peak RSS {res['rss_fill_mib']:.1f} MiB; store {res['store_fill']}")
    b.origin.delay(cfg.origin_delay_ms)
    b.origin.reset()
    wrk_res, cpu = b.meter.measured(proc, lambda: run_wrk(port, "zipf.lua", "/", cfg.duration, cfg.conns, [cfg.zipf_s, "42"]))
    res.update(wrk_res)
    res.update({"cpu_pct": cpu, "origin": b.origin.count(), "rss_now_mib": proc.rss_kib() / 1024.0,
                "store_end": store_stats(b, server, proc)})
    res["hit_ratio"] = 1.0 - res["origin"] / res["requests"] if res["requests"] else 0.0
    return res


def send_purge(b, server, board):
    """Purges one board's tag: tagcache's POST /purge, Varnish's xkey PURGE.
    Returns (ms, status, the answer's text)."""
    t0 = time.perf_counter()
    if server == "tagcache":
        body = json.dumps({"tags": [f"board:wpurge:{board}"]})
        st, _, data = request("POST", b.ports.admin, "/purge", {
            "Authorization": f"Bearer {b.cfg.token}", "Content-Type": "application/json"}, body, timeout=120)
    elif server == "varnish":
        st, _, data = request("PURGE", b.ports.proxy, "/", {"xkey-purge": f"board-{board}"}, timeout=120)
    else:
        raise ValueError(server)
    ms = (time.perf_counter() - t0) * 1000.0
    text = data.decode("utf-8", "replace").strip()
    if "<title>" in text:  # Varnish synth page
        text = text.split("<title>", 1)[1].split("</title>", 1)[0]
    return ms, st, " ".join(text.split())[:200]


def purge(b, server, proc):
    """(d) For each PURGE_SIZES n: n entries under one tag, one purge of it,
    and three sampled entries before, after and once more."""
    port = b.ports.proxy
    out = {"sizes": {}}
    b.origin.delay(0)
    for n in b.cfg.purge_sizes:
        board = f"purge{n}"
        b.origin.reset()
        fill_s, received, bad = run_fill(port, ["purge", board, str(n)])
        filled = b.origin.count()
        samples = sorted({0, n // 2, n - 1})
        paths = [f"/api/boards/{board}/contacts?page={i + 1}&pageSize=10&filter=all" for i in samples]
        before = [cache_status(port, p, "wpurge")[0] for p in paths]
        stats_before = tagcache_stats(b) if server == "tagcache" else None
        ms, st, body = send_purge(b, server, board)
        stats_after = tagcache_stats(b) if server == "tagcache" else None
        after = [cache_status(port, p, "wpurge")[0] for p in paths]
        # And again: the refetched entries should be cached anew.
        again = [cache_status(port, p, "wpurge")[0] for p in paths]
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
    b.origin.delay(b.cfg.origin_delay_ms)
    return out


def twocore(b, server, proc):
    """Two cores: the server on both cores with 2 worker threads or processes
    (Varnish: its default 2 thread pools), and wrk with 2 threads and
    TWOCORE_CONNECTIONS connections on the same two cores. (a) the hot key,
    then (b) the Zipf mix after a fill. Server and load share the cores, so
    these are shared-core figures: the load generator takes its part of the
    CPU the server could otherwise use."""
    cfg, port = b.cfg, b.ports.proxy
    on_both = b.pinning.on_all_cores([])
    conns = cfg.twocore_conns
    b.origin.delay(cfg.origin_delay_ms)
    b.origin.reset()
    first = cache_status(port, HOT_PATH, HOT_WS)[0]
    second = cache_status(port, HOT_PATH, HOT_WS)[0]
    hot_res, cpu = b.meter.measured_machine(
        proc, lambda: run_wrk(port, "hot.lua", HOT_PATH, cfg.duration, conns, threads=2, prefix=on_both))
    hot_res = dict(hot_res, **cpu, origin=b.origin.count())
    b.origin.delay(0)
    b.origin.reset()
    fill_s, _, fill_bad = run_fill(port, ["zipf"])
    b.origin.delay(cfg.origin_delay_ms)
    run_wrk(port, "zipf.lua", "/", max(2, cfg.duration // 3), conns, [cfg.zipf_s, "7"], threads=2, prefix=on_both)
    b.origin.reset()
    zipf_res, cpu = b.meter.measured_machine(
        proc, lambda: run_wrk(port, "zipf.lua", "/", cfg.duration, conns, [cfg.zipf_s, "42"], threads=2,
                              prefix=on_both))
    zipf_res = dict(zipf_res, **cpu, origin=b.origin.count(), fill_s=fill_s, fill_non200=fill_bad)
    return {"first": first, "second": second, "conns": conns, "hot": hot_res, "zipf": zipf_res}


def pressure_trace(b):
    """The trace of workload pressure, made once per run and written to two
    replay files (warm-up, measured) in the scratch directory."""
    if getattr(b, "pressure_files", None):
        return b.pressure_files
    cfg = b.cfg
    objects, drawn = tracegen.make_trace(cfg.pressure_mib * 2**20, cfg.pressure_factor, cfg.pressure_requests,
                                      cfg.pressure_seed)
    lines = tracegen.trace_lines(objects, drawn)
    warm = len(lines) // 4
    files = {}
    for name, part in (("warm", lines[:warm]), ("measured", lines[warm:])):
        path = os.path.join(b.tmp, f"pressure-{name}.trace")
        with open(path, "w") as f:
            f.write("\n".join(part) + "\n")
        files[name] = path
    files["summary"] = tracegen.summary(objects, drawn)
    files["summary"]["warm_requests"] = warm
    log(f"pressure trace: {files['summary']}")
    b.pressure_files = files
    return files


class TmpfsPeak:
    """Samples the size of nginx's cache directory every second in a thread:
    nginx's cache manager checks max_size only every 10 s or so (it sleeps
    until the next entry could expire, at most 10 s), so the directory holds
    more than max_size in between. Keeps the peak and the mean."""

    def __init__(self, cache_dir):
        self.cache_dir = cache_dir
        self.peak_kib = 0
        self.samples = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop.is_set():
            kib = du_kib(self.cache_dir)
            self.samples.append(kib)
            self.peak_kib = max(self.peak_kib, kib)
            self.stop.wait(1.0)

    def mean_kib(self):
        return sum(self.samples) / len(self.samples) if self.samples else float(self.peak_kib)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        kib = du_kib(self.cache_dir)  # the end counts too: a short run has one sample before it
        self.samples.append(kib)
        self.peak_kib = max(self.peak_kib, kib)


def pressure(b, server, proc):
    """Efficiency under memory pressure: every server with PRESSURE_MIB of
    cache memory is sent the same deterministic trace over PRESSURE_FACTOR x
    that many distinct bytes (2 KB lists and 20 KB details, workspaces
    skewed), origin delay 0: a quarter of it to warm up, then the rest,
    measured. Hit ratio and byte hit ratio come from the origin's own counts
    (requests and body bytes it served) against what the client received."""
    cfg, port = b.cfg, b.ports.proxy
    files = pressure_trace(b)
    limit = max(60, cfg.pressure_requests // 1000)
    b.origin.delay(0)
    b.origin.reset()
    warm_s, warm = run_replay(port, files["warm"], cfg.pressure_conns, limit)
    warm_origin = b.origin.count()
    b.origin.reset()
    cache_dir = getattr(proc, "cache_dir", None)
    if cache_dir:
        with TmpfsPeak(cache_dir) as tp:
            secs, got = run_replay(port, files["measured"], cfg.pressure_conns, limit)
        tmpfs_peak, tmpfs_mean = tp.peak_kib / 1024.0, tp.mean_kib() / 1024.0
    else:
        secs, got = run_replay(port, files["measured"], cfg.pressure_conns, limit)
        tmpfs_peak = tmpfs_mean = None
    origin, origin_bytes = b.origin.count(), b.origin.bytes()
    b.origin.delay(cfg.origin_delay_ms)
    n, nbytes = got["received"], got["bytes"]
    res = {
        "memory_mib": cfg.pressure_mib, "trace": files["summary"],
        "warm_s": warm_s, "warm_requests": warm["received"], "warm_origin": warm_origin,
        "replay_s": secs, "requests": n, "bytes": nbytes, "non200": got["non200"] + warm["non200"],
        "hits_said": got["hits"], "origin": origin, "origin_bytes": origin_bytes,
        "hit_ratio": 1.0 - origin / n if n else 0.0,
        "byte_hit_ratio": 1.0 - origin_bytes / nbytes if nbytes else 0.0,
        "saved": n - origin, "saved_bytes": nbytes - origin_bytes,
        "store_end": store_stats(b, server, proc), "rss_now_mib": proc.rss_kib() / 1024.0,
    }
    if tmpfs_peak is not None:
        res["tmpfs_peak_mib"] = tmpfs_peak
        res["tmpfs_mean_mib"] = tmpfs_mean
    log(f"pressure/{server}: hit ratio {100 * res['hit_ratio']:.1f} %, byte hit ratio "
        f"{100 * res['byte_hit_ratio']:.1f} %, origin {origin:,} of {n:,} requests, replay {secs:.1f} s")
    return res


def latency(b, server, proc):
    """Latency without coordinated omission: the server's peak on the hot key
    (wrk, closed loop, as in (a)), then fixed-rate open-loop load
    (examples/bench_load.rs) at LATENCY_RATES % of that peak and at the
    LATENCY_FIXED_RPS rates every server gets, latency measured from when each
    request was due."""
    cfg, port = b.cfg, b.ports.proxy
    b.origin.delay(cfg.origin_delay_ms)
    b.origin.reset()
    first = cache_status(port, HOT_PATH, HOT_WS)[0]
    second = cache_status(port, HOT_PATH, HOT_WS)[0]
    peak, cpu = b.meter.measured(proc, lambda: run_wrk(port, "hot.lua", HOT_PATH, cfg.duration, cfg.conns))
    res = {"first": first, "second": second, "peak_rps": peak["rps"], "peak_p50": peak["p50"],
           "peak_p99": peak["p99"], "peak_p999": peak["p999"], "cpu_pct": cpu, "rates": {}}
    res.update(b.meter.take_foreign())
    hz = os.sysconf("SC_CLK_TCK")

    def at(target):
        b.meter.wait_quiet()
        c0, t0 = proc.cpu_ticks(), time.perf_counter()
        r = run_rate(cfg.load_bin, port, HOT_PATH, HOT_WS, target, cfg.duration, cfg.conns)
        r["cpu_pct"] = 100.0 * (proc.cpu_ticks() - c0) / hz / (time.perf_counter() - t0)
        return r

    def logged(what, target, r):
        log(f"latency/{server} {what} = {target:,.0f} req/s: sent {r['rps']:,.0f}/s, p50 {r['p50']:.0f} us, "
            f"p99 {r['p99']:.0f} us, p99.9 {r['p999']:.0f} us, errors {r['errors']}, non-2xx {r['non2xx']}")

    for pct in cfg.latency_rates:
        target = peak["rps"] * pct / 100.0
        r = res["rates"][str(pct)] = at(target)
        logged(f"{pct} %", target, r)
    if cfg.latency_fixed:
        res["fixed"] = {}
    for rps in cfg.latency_fixed:
        r = res["fixed"][str(rps)] = at(rps)
        logged("fixed", rps, r)
    res["origin"] = b.origin.count()
    return res


def start_options(w, cfg):
    """How the server of workload w is started (procs.Servers.start)."""
    if w == "twocore":
        return {"threads": 2}
    if w == "pressure":
        return {"memory_mib": cfg.pressure_mib}
    return {}


# The workloads run once per server by driver.Bench.run_workload.
PER_SERVER = {"hot": hot, "zipf": zipf, "herd": herd, "purge": purge, "full": full,
              "twocore": twocore, "pressure": pressure, "latency": latency}


def l2(b, placement="core"):
    """(e) L2 hits with Redis on the server's core over loopback TCP ("core":
    Redis's CPU is charged to the server), on the same core over a unix
    socket ("unix": a Redis on the same host), or on the load core
    ("apart": as in production, where Redis is a service of its own
    shared by instances)."""
    cfg, port = b.cfg, b.ports.proxy
    apart = placement == "apart"
    key = (L2_KEYS[placement], "tagcache")
    if not shutil.which("redis-server"):
        b.results[key] = {"skipped": "redis-server is not installed"}
        return
    variant, check_error = b.servers.l2_variant()
    if variant is None:
        msg = "L2 not available in this build"
        print(msg, flush=True)
        b.results[key] = {"skipped": msg, "check": (check_error or "")[:600]}
        return
    redis, variant = b.servers.start_redis(placement, variant)
    on_core0 = [] if apart else [redis]
    if apart:
        b.meter.extra_core1 = [redis]
    try:
        if not wait_port(b.ports.redis, redis):
            raise RuntimeError(f"redis did not start:\n{redis.tail()}")
        proc = b.servers.start("tagcache", variant)
        try:
            b.origin.delay(cfg.origin_delay_ms)
            b.origin.reset()
            first, _, _ = cache_status(port, HOT_PATH, HOT_WS)
            second, h, _ = cache_status(port, HOT_PATH, HOT_WS)
            layer = h.get("x-cache-layer", "-")
            b.meter.wait_quiet()
            hz = os.sysconf("SC_CLK_TCK")
            c0 = proc.cpu_ticks() + redis.cpu_ticks()
            t0 = time.perf_counter()
            res = run_wrk(port, "hot.lua", HOT_PATH, cfg.duration, cfg.conns)
            cpu = 100.0 * (proc.cpu_ticks() + redis.cpu_ticks() - c0) / hz / (time.perf_counter() - t0)
            res.update({"cpu_pct": cpu, "origin": b.origin.count(), "first": first, "second": second, "layer": layer,
                        "variant": variant, "apart": apart})
            res.update(b.meter.probe_1conn([proc] + on_core0, port, HOT_PATH))
            res["origin"] = b.origin.count()
            res["redis_rss_mib"] = redis.peak_rss_kib() / 1024.0
            b.finish(key, proc, res)
        finally:
            proc.stop()
    finally:
        b.meter.extra_core1 = []
        redis.stop()


def ceiling(b):
    """A bare static responder (hyper, then nginx `return 200`) on the server's
    core under the settings of (a): what the machine allows at all."""
    cfg, port = b.cfg, b.ports.proxy
    for name in ["static", "nginx-static"]:
        if name == "nginx-static" and not shutil.which("nginx"):
            continue
        log(f"== ceiling: {name}")
        try:
            proc = b.servers.start(name)
        except Exception as e:  # noqa: BLE001
            b.results[("ceiling", name)] = {"failed": str(e)[:800]}
            continue
        try:
            res, cpu = b.meter.measured(proc, lambda: run_wrk(port, "hot.lua", HOT_PATH, cfg.duration, cfg.conns))
            res["cpu_pct"] = cpu
            b.finish(("ceiling", name), proc, res)
        finally:
            proc.stop()
