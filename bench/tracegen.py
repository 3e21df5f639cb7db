"""The trace of workload pressure: a deterministic list of requests over more
distinct bytes than a store holds, replayed identically against each server.

A pure function of its parameters and seed (no clock, no files): the same
arguments give the same trace, so each server is sent the same requests in
the same order.

The key space is a set of objects, each a contact list (`pageSize=50`, about
2.2 KB) or, with probability `large_share`, a contact's details (about
20.5 KB), with as many objects as make `factor` times `store_bytes` in all.
Each object belongs to one workspace, drawn with a Zipf law (exponent
`ws_s`) over `workspaces` workspaces: a few tenants own most of the data.
Requests draw objects with a Zipf law (exponent `s`) over a random ranking
of the objects, so popular objects are of both sizes and in every workspace,
in proportion to what each workspace owns.
"""

import bisect
import itertools
import random

# Body sizes of the bench origin (examples/bench_origin.rs), for sizing the
# key space: a 50-contact list and a contact's details, in bytes.
LIST_BYTES = 2200
DETAIL_BYTES = 20500


def zipf_cdf(n, s):
    """Cumulative weights of ranks 1..n under a Zipf law of exponent s."""
    return list(itertools.accumulate(1.0 / (r ** s) for r in range(1, n + 1)))


def object_path(i, large):
    """The URL of object i: a contact's details, or a contact list whose board
    and page make it unique (100 pages per board)."""
    if large:
        return f"/api/contacts/p{i}"
    return f"/api/boards/p{i // 100}/contacts?page={i % 100 + 1}&pageSize=50&filter=all"


def make_trace(store_bytes, factor, requests, seed, large_share=0.2, workspaces=50, s=1.0, ws_s=1.0):
    """Returns (objects, requests): objects are (workspace, path, size) with
    size the approximate body size, and requests a list of object indexes."""
    rng = random.Random(seed)
    mean = large_share * DETAIL_BYTES + (1 - large_share) * LIST_BYTES
    n = max(1, round(factor * store_bytes / mean))
    ws_cdf = zipf_cdf(workspaces, ws_s)
    objects = []
    for i in range(n):
        large = rng.random() < large_share
        ws = bisect.bisect_left(ws_cdf, rng.random() * ws_cdf[-1])
        objects.append((f"w{min(ws, workspaces - 1)}", object_path(i, large), DETAIL_BYTES if large else LIST_BYTES))
    # Popularity: rank r of a random permutation of the objects.
    ranking = list(range(n))
    rng.shuffle(ranking)
    drawn = rng.choices(ranking, cum_weights=zipf_cdf(n, s), k=requests)
    return objects, drawn


def trace_lines(objects, drawn):
    """The replay file's lines (bench/lua/replay.lua): `workspace path`."""
    return [f"{objects[i][0]} {objects[i][1]}" for i in drawn]


def summary(objects, drawn):
    """What the trace offers: distinct objects and bytes, requests and
    requested bytes, the share of requests for large objects, and the
    requests of the busiest workspace as a share of all."""
    sizes = [o[2] for o in objects]
    per_ws = {}
    for i in drawn:
        per_ws[objects[i][0]] = per_ws.get(objects[i][0], 0) + 1
    large = sum(1 for i in drawn if objects[i][2] == DETAIL_BYTES)
    return {
        "objects": len(objects), "object_bytes": sum(sizes),
        "requests": len(drawn), "requested_bytes": sum(sizes[i] for i in drawn),
        "distinct_requested": len(set(drawn)),
        "large_share": large / len(drawn) if drawn else 0.0,
        "top_workspace_share": max(per_ws.values()) / len(drawn) if drawn else 0.0,
    }
