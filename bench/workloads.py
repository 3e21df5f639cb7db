"""The workloads: what each one sends to a server and what it records. Each
takes the run's context `b` (driver.Bench: settings, ports, servers, meter,
origin, results) and one started server, and returns its result fields."""

import json
import os
import shutil
import subprocess
import time

from loadgen import cache_status, python_hot_loop, run_fill, run_herd, run_wrk
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


# The workloads run once per server by driver.Bench.run_workload.
PER_SERVER = {"hot": hot, "zipf": zipf, "herd": herd, "purge": purge, "full": full}


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
