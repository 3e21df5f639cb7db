#!/usr/bin/env python3
"""Cold herd: N truly concurrent requests for one key.

Opens N connections first, then writes all N requests back to back, then reads
every response; prints one JSON object (latencies in ms, measured from the
moment the request was written to the last byte of its response).

usage: herd.py --port 18080 --path '/api/...' [--header 'X-Workspace-ID: w1'] [-n 1000]
Loopback only: the host is fixed to 127.0.0.1. Stdlib only.
"""

import argparse
import asyncio
import json
import sys
import time

HOST = "127.0.0.1"


def percentile(sorted_vals, p):
    if not sorted_vals:
        return None
    k = min(len(sorted_vals) - 1, max(0, int(round(p / 100.0 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[k]


async def one(reader, writer, request, start_evt, results, timeout):
    await start_evt.wait()
    t0 = time.perf_counter()
    try:
        writer.write(request)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(-1), timeout)
        t1 = time.perf_counter()
    except Exception as e:  # noqa: BLE001 - any failure is a failed request
        results.append({"error": type(e).__name__})
        writer.close()
        return
    writer.close()
    head, _, _ = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = None
    cache = None
    if lines and lines[0].startswith(b"HTTP/"):
        parts = lines[0].split()
        if len(parts) >= 2 and parts[1].isdigit():
            status = int(parts[1])
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"x-cache-status":
            cache = value.strip().decode("latin-1").upper()
    results.append({"status": status, "cache": cache, "ms": (t1 - t0) * 1000.0, "bytes": len(data)})


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--path", required=True)
    ap.add_argument("--header", action="append", default=[])
    ap.add_argument("-n", type=int, default=1000)
    ap.add_argument("--timeout", type=float, default=30.0)
    args = ap.parse_args()

    req = f"GET {args.path} HTTP/1.1\r\nHost: {HOST}:{args.port}\r\nConnection: close\r\n"
    for h in args.header:
        req += h + "\r\n"
    request = (req + "\r\n").encode()

    # Connect everything first (in waves, so the listen backlog is not the test).
    conns = []
    connect_errors = 0
    wave = 200
    for i in range(0, args.n, wave):
        batch = await asyncio.gather(
            *(asyncio.open_connection(HOST, args.port) for _ in range(min(wave, args.n - i))),
            return_exceptions=True,
        )
        for c in batch:
            if isinstance(c, BaseException):
                connect_errors += 1
            else:
                conns.append(c)

    start = asyncio.Event()
    results = []
    tasks = [asyncio.ensure_future(one(r, w, request, start, results, args.timeout)) for r, w in conns]
    await asyncio.sleep(0.05)  # let every task reach the barrier
    t0 = time.perf_counter()
    start.set()
    await asyncio.gather(*tasks)
    wall = (time.perf_counter() - t0) * 1000.0

    lat = sorted(r["ms"] for r in results if "ms" in r)
    statuses = {}
    caches = {}
    errors = {}
    for r in results:
        if "error" in r:
            errors[r["error"]] = errors.get(r["error"], 0) + 1
            continue
        statuses[str(r["status"])] = statuses.get(str(r["status"]), 0) + 1
        caches[str(r["cache"])] = caches.get(str(r["cache"]), 0) + 1
    out = {
        "requested": args.n,
        "connected": len(conns),
        "connect_errors": connect_errors,
        "completed": len(lat),
        "errors": errors,
        "statuses": statuses,
        "cache_status": caches,
        "p50_ms": percentile(lat, 50),
        "p99_ms": percentile(lat, 99),
        "max_ms": lat[-1] if lat else None,
        "min_ms": lat[0] if lat else None,
        "wall_ms": wall,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(130)
