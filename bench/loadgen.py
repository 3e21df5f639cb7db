"""Load generation, on the load core: wrk with the Lua scripts of bench/lua,
the fills that request each key of a set once, the replay of a trace file,
the fixed-rate open-loop load (examples/bench_load.rs), the cold herd
(herd.py), and single requests that read X-Cache-Status."""

import http.client
import json
import os
import subprocess
import sys
import time

from procs import HOST, request

HERE = os.path.dirname(os.path.abspath(__file__))
LUA = os.path.join(HERE, "lua")


def cache_status(port, path, ws):
    """One GET with X-Workspace-ID: (X-Cache-Status or what went wrong, headers, body length)."""
    try:
        st, h, body = request("GET", port, path, {"X-Workspace-ID": ws})
    except OSError as e:
        return f"error:{type(e).__name__}", {}, 0
    return (h.get("x-cache-status", "-").upper() if st == 200 else f"status:{st}"), h, len(body)


def run_wrk(port, script, path, duration, conns, script_args=(), timeout_s=5, threads=1, prefix=()):
    """Runs wrk on the proxy port; returns the parsed BENCHJSON of report.lua.
    prefix goes before wrk's argv (taskset, to place it on other cores)."""
    argv = [
        *prefix, "wrk", "-t", str(threads), "-c", str(conns), "-d", f"{duration}s", "--timeout", f"{timeout_s}s",
        "-s", os.path.join(LUA, script), f"http://{HOST}:{port}{path}",
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


def run_fill(port, mode_args, conns=100, limit_s=300):
    """Requests each key of a set once (fill.lua); returns (seconds, received, non200)."""
    argv = [
        "wrk", "-t", "1", "-c", str(conns), "-d", f"{limit_s}s", "--timeout", "10s",
        "-s", os.path.join(LUA, "fill.lua"), f"http://{HOST}:{port}/", "--", *mode_args,
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


def run_replay(port, trace_file, conns, limit_s):
    """Sends each line of a trace file once, in order (replay.lua); returns
    (seconds, the REPLAYJSON fields: received, non200, bytes, hits)."""
    argv = [
        "wrk", "-t", "1", "-c", str(conns), "-d", f"{limit_s}s", "--timeout", "10s",
        "-s", os.path.join(LUA, "replay.lua"), f"http://{HOST}:{port}/", "--", trace_file,
    ]
    t0 = time.perf_counter()
    r = subprocess.run(argv, capture_output=True, text=True, timeout=limit_s + 30)
    secs = time.perf_counter() - t0
    time.sleep(0.3)  # let the last fills settle before anyone reads the origin's counters
    for line in r.stdout.splitlines():
        if line.startswith("REPLAYJSON "):
            return secs, json.loads(line[len("REPLAYJSON "):])
    raise RuntimeError(f"replay did not finish in {limit_s} s (rc={r.returncode}; a request failed or the "
                       f"server was too slow): {r.stdout[-500:]} {r.stderr[-500:]}")


def run_rate(load_bin, port, path, ws, rate, duration, conns, warmup=1):
    """Fixed-rate open-loop load (examples/bench_load.rs): `rate` requests per
    second over `conns` connections, latency measured from when each request
    was due. Returns its RATEJSON fields (latencies in microseconds)."""
    argv = [load_bin, "--port", str(port), "--path", path, "--header", f"X-Workspace-ID: {ws}",
            "--rate", f"{rate:.0f}", "--duration", str(duration), "--warmup", str(warmup),
            "--connections", str(conns)]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=duration + warmup + 60)
    for line in r.stdout.splitlines():
        if line.startswith("RATEJSON "):
            return json.loads(line[len("RATEJSON "):])
    raise RuntimeError(f"bench_load produced no result (rc={r.returncode}): {r.stdout[-500:]} {r.stderr[-500:]}")


def python_hot_loop(port, path, ws, duration):
    """Fallback load for --smoke when wrk is missing: one keep-alive connection."""
    c = http.client.HTTPConnection(HOST, port, timeout=10)
    n = 0
    lat = []
    hits = 0
    end = time.time() + duration
    while time.time() < end:
        t0 = time.perf_counter()
        c.request("GET", path, headers={"X-Workspace-ID": ws})
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


def run_herd(port, path, ws, n):
    """herd.py: n concurrent requests for one key; returns its JSON report."""
    argv = [sys.executable, os.path.join(HERE, "herd.py"), "--port", str(port), "--path", path,
            "--header", f"X-Workspace-ID: {ws}", "-n", str(n)]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise RuntimeError(f"herd.py failed: {r.stderr[-800:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])
