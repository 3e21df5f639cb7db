"""The report of a run: the markdown table and the JSON of raw numbers, each a
pure function of the run's facts and its results (no clock, no /proc, no
subprocess), so that it can be tested on results made up for the purpose."""

import re
import types

from measure import is_noisy

# Every server's cache memory, and tagcache's memory goal with that store full.
STORE_MIB = 256
GOAL_RSS_MIB = 320
# tagcache's goal for a hit served from L2 (Redis), measured unsaturated.
GOAL_L2_P99_MS = 1.0
# tagcache's goal on two cores: req/s against nginx with 2 workers.
GOAL_TWOCORE_RATIO = 1.2
# A fixed-rate run that sent less than this share of its target rate did not
# hold the rate: its latencies are those of an overloaded server or generator.
RATE_HELD = 0.97

# The facts of a run that render_markdown reads.
RUN_FIELDS = (
    "started", "finished",      # datetime (UTC)
    "machine",                  # host.machine_facts(): cpus, cpu_model, mem_gib, kernel
    "versions",                 # host.versions_line()
    "pinned", "nice",           # core pinning in force; niceness (0: none)
    "servers", "workloads",     # what ran, in order
    "conns", "duration", "rounds", "probe_seconds",
    "origin_delay_ms", "herd_n", "herd_delay_ms", "zipf_s", "purge_sizes", "full_contacts",
    "notes",                    # list of strings noted while running
)
# Facts read only when their workload ran: twocore_conns, pressure_mib,
# pressure_factor, latency_rates.


def machine_line(machine):
    """The CPU count, memory and kernel of host.machine_facts(), e.g.
    `2 CPUs, 24 GiB RAM, Linux 6.1.0`."""
    mem = machine.get("mem_gib")
    mem = "?" if mem is None else f"{mem:.0f} GiB"
    return f"{machine.get('cpus')} CPUs, {mem} RAM, Linux {machine.get('kernel')}"


def render_json(run, results):
    """The JSON report (bench/results/latest.json): every result under
    "workload/server", and the machine under "machine"."""
    out = {f"{w}/{s}": r for (w, s), r in results.items()}
    out["machine"] = dict(run["machine"])
    return out


def render_markdown(run, results):
    """The markdown report (bench/results/latest.md) of a run.

    `run` holds the run's facts (see RUN_FIELDS), `results` maps (workload,
    server) to the fields a workload recorded. Reads nothing else: the same
    arguments give the same text."""
    run = types.SimpleNamespace(**run)
    peers = [s for s in run.servers if s != "tagcache"]
    has_tc = "tagcache" in run.servers
    L = []
    L.append("# tagcache load benchmark: latest results")
    L.append("")
    L.append(f"Run {run.started:%Y-%m-%d %H:%M} UTC, {(run.finished - run.started).total_seconds():.0f} s in all. "
             "Produced by `bench/run.sh`; method in `docs/benchmarks.md`.")
    L.append("")
    L.append(f"- Machine: {machine_line(run.machine)}")
    L.append(f"- Processor: {run.machine.get('cpu_model') or '?'}")
    L.append(f"- Versions: {run.versions}")
    L.append(f"- Pinning: {'server under test on core 0; wrk, herd client, origin and driver on core 1' if run.pinned else 'none'}"
             f"{f'; all at nice {run.nice}' if run.nice else ''}")
    L.append(f"- Load: wrk 1 thread, {run.conns} keep-alive connections, {run.duration} s per measured run; "
             f"origin delay {run.origin_delay_ms} ms per miss; herd {run.herd_n} requests with origin delay {run.herd_delay_ms} ms; "
             f"Zipf s={run.zipf_s} over 50,000 keys; tagcache hits also with 1 connection for "
             f"{run.probe_seconds} s; (a) and (b) in {run.rounds} round(s), "
             f"the servers taking turns, each server's median round reported")
    exceptions = []
    if "twocore" in run.workloads:
        exceptions.append("2 workers on both cores in twocore")
    if "pressure" in run.workloads:
        exceptions.append(f"{getattr(run, 'pressure_mib', '?')} MiB in pressure")
    L.append("- Every server: 256 MiB of cache memory, TTL 300 s, 1 worker thread/process, restarted empty before each "
             f"workload{' (except: ' + '; '.join(exceptions) + ')' if exceptions else ''}.")
    L.append("")

    def r(w, s):
        return results.get((w, s), {})

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
        if w not in run.workloads:
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
    if "herd" in run.workloads:
        wname = f"(c) cold herd x{run.herd_n}"
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
    if "purge" in run.workloads:
        for n in run.purge_sizes:
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

    if "ceiling" in run.workloads:
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

    if "full" in run.workloads:
        L.extend(_markdown_full(run, results, cols))

    if "twocore" in run.workloads:
        L.extend(markdown_twocore(run, results, cols))
    if "pressure" in run.workloads:
        L.extend(markdown_pressure(run, results, cols))
    if "latency" in run.workloads:
        L.extend(markdown_latency(run, results, cols))

    if "l2" in run.workloads and has_tc:
        L.append("## (e) tagcache L2 (Redis) hits, memory tier off")
        L.append("")
        L.append(f"Saturated: wrk with {run.conns} connections as in (a). 1 connection: the same hot key right "
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
            rows.append(f"| {place} | {run.conns} | {d['rps']:,.0f} | {share} | {d['p50'] / 1e3:.2f} | "
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
    for (w, s), d in sorted(results.items()):
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
        if w == "twocore" and "hot" in d:
            parts = "; ".join(f"{p} {d[p].get('requests', 0):,} requests, {d[p].get('errors', 0)} socket errors, "
                              f"{d[p].get('err_status', 0)} HTTP errors" for p in ("hot", "zipf") if p in d)
            L.append(f"- twocore/{s}: first request `{d.get('first', '-')}`, second `{d.get('second', '-')}`; {parts}; "
                     f"Zipf fill {d.get('zipf', {}).get('fill_s', 0):.1f} s")
        if w == "pressure" and "hit_ratio" in d:
            L.append(f"- pressure/{s}: warm-up {d['warm_requests']:,} requests in {d['warm_s']:.1f} s "
                     f"({d['warm_origin']:,} origin requests); measured {d['requests']:,} requests in "
                     f"{d['replay_s']:.1f} s, {d['hits_said']:,} answered `X-Cache-Status: HIT`, {d['non200']} non-200")
        if w == "latency" and "rates" in d:
            L.append(f"- latency/{s}: first request `{d.get('first', '-')}`, second `{d.get('second', '-')}`; peak "
                     f"{d['peak_rps']:,.0f} req/s (closed loop: p50 {d['peak_p50'] / 1e3:.2f} ms, p99 "
                     f"{d['peak_p99'] / 1e3:.2f} ms) at {d.get('cpu_pct', 0):.0f} % of its core")
        if "tmpfs_mib" in d:
            L.append(f"- {w}/{s}: nginx cache files on tmpfs {d['tmpfs_mib']:.1f} MiB (not in its RSS)")
    for n in run.notes + auto_notes(results):
        L.append(f"- {n}")
    L.append("")
    return "\n".join(L)

def _markdown_full(run, results, cols):
    """The section of workload full: memory with the store full."""
    L = []
    n = run.full_contacts
    L.append(f"## Full cache: memory with {STORE_MIB} MiB of entries")
    L.append("")
    L.append(f"Each server, restarted empty, is sent {n:,} distinct contact details (`/api/contacts/c{{i}}`, ~20 KB, "
             f"X-Workspace-ID w0…w49: ~{n * 20 / 1000:.0f} MB), then the 50,000 Zipf list keys of (b) (~2 KB: ~100 MB), "
             f"each once, with origin delay 0 and 100 connections: more than its {STORE_MIB} MiB hold. Then the measured "
             f"Zipf run of (b), {run.duration} s with origin delay {run.origin_delay_ms} ms and no warm-up: evicted keys "
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
        d = results.get(("full", s), {})
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
    d = results.get(("full", "tagcache"), {})
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

def _num(v, scale=1.0, digits=0):
    """A number as the tables write it, or "-" when missing."""
    if not isinstance(v, (int, float)):
        return "-"
    return f"{v * scale:,.{digits}f}"


def _div(a, b):
    """a / b with two decimals, or "-" when either is missing or b is 0."""
    if not isinstance(a, (int, float)) or not isinstance(b, (int, float)) or not b:
        return "-"
    return f"{a / b:.2f}"


def markdown_twocore(run, results, cols):
    """The section of workload twocore: every server on both cores, with wrk
    on the same two cores."""
    peers = [s for s in cols if s != "tagcache"]
    has_tc = "tagcache" in cols
    conns = getattr(run, "twocore_conns", "?")
    L = ["## Two cores, shared with the load generator", ""]
    L.append(f"Each server on both cores: tagcache `server.threads: 2`, nginx `worker_processes 2`, Varnish "
             f"with its defaults (2 thread pools); wrk with 2 threads and {conns} connections on the same two "
             f"cores, {run.duration} s per run. **A shared-core figure**: the load generator takes its share of "
             "the CPU the server could otherwise use (see \"wrk+origin CPU\"), so this is not what the server "
             "does with two cores of its own. CPU is in % of one core (200 = both).")
    L.append("")
    ratio_cols = [f"tagcache ÷ {p}" for p in peers] if has_tc else []
    L.append("| workload | metric | " + " | ".join(cols + ratio_cols) + " |")
    L.append("|---|---|" + "---:|" * (len(cols) + len(ratio_cols)))

    def part(s, w):
        d = results.get(("twocore", s), {})
        if "failed" in d:
            return None
        return d.get(w, {})
    for w, wname in (("hot", "(a) hot key, 2 cores"), ("zipf", "(b) Zipf 50k, 2 cores")):
        for metric, field, scale, digits, want in (
                ("req/s", "rps", 1, 0, True), ("p50 ms", "p50", 1e-3, 2, True), ("p99 ms", "p99", 1e-3, 2, True),
                ("p99.9 ms", "p999", 1e-3, 2, True), ("origin requests", "origin", 1, 0, False),
                ("server CPU %", "cpu_pct", 1, 0, False), ("wrk+origin CPU %", "load_cpu_pct", 1, 0, False),
                ("others' CPU %", "foreign_cpu_pct", 1, 0, False)):
            vals = []
            for s in cols:
                d = part(s, w)
                vals.append("failed" if d is None else _num(d.get(field), scale, digits))
            rats = []
            if has_tc:
                tc = part("tagcache", w) or {}
                rats = [_div(tc.get(field), (part(p, w) or {}).get(field)) if want else "" for p in peers]
            L.append(f"| {wname} | {metric} | " + " | ".join(vals + rats) + " |")
    L.append("")
    if has_tc and "nginx" in cols:
        for w, wname in (("hot", "(a)"), ("zipf", "(b)")):
            a, b = (part("tagcache", w) or {}).get("rps"), (part("nginx", w) or {}).get("rps")
            if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b:
                verdict = "met" if a / b >= GOAL_TWOCORE_RATIO else "not met"
                L.append(f"- Goal \"two cores: ≥ {GOAL_TWOCORE_RATIO:g} × nginx with 2 workers\", {wname}: "
                         f"{a:,.0f} vs {b:,.0f} req/s = {a / b:.2f} ×: **{verdict}** (shared cores).")
        L.append("")
    return L


def markdown_pressure(run, results, cols):
    """The section of workload pressure: hit ratio and byte hit ratio of each
    server replaying one trace over more bytes than its memory."""
    mib = getattr(run, "pressure_mib", "?")
    factor = getattr(run, "pressure_factor", "?")
    L = [f"## Efficiency under memory pressure: {mib} MiB each, a trace over {factor} × that", ""]
    trace = next((d["trace"] for (w, _), d in sorted(results.items()) if w == "pressure" and "trace" in d), None)
    desc = (f"Every server, restarted empty with {mib} MiB of cache memory (tagcache `storage.memory.max_size`, "
            f"nginx `max_size` with a keys zone of an eighth of it, Varnish `-s malloc`), replays the same seeded "
            "trace in the same order with origin delay 0: contact lists (~2 KB) and contact details (~20 KB), "
            "workspaces drawn with a Zipf law, objects requested with a Zipf law (s = 1.0). The first quarter "
            "warms the cache; the rest is measured. Hit ratio = 1 − origin requests ÷ requests; byte hit ratio "
            "= 1 − origin body bytes ÷ body bytes received, both counted by the origin.")
    if trace:
        desc += (f" The trace: {trace['objects']:,} objects, {trace['object_bytes'] / 2**20:,.0f} MiB in all "
                 f"({trace['distinct_requested']:,} of them requested), {trace['requests']:,} requests "
                 f"({trace['warm_requests']:,} warm-up) for {trace['requested_bytes'] / 2**20:,.0f} MiB; "
                 f"{100 * trace['large_share']:.0f} % of requests for ~20 KB objects; the busiest workspace "
                 f"makes {100 * trace['top_workspace_share']:.0f} % of requests.")
    L += [desc, ""]
    L.append("| server | hit ratio % | byte hit ratio % | requests measured | origin requests | origin requests "
             "saved | origin MiB / saved MiB | store at end | replay s | peak RSS MiB |")
    L.append("|---|---:|---:|---:|---:|---:|---:|---|---:|---:|")
    for s in cols:
        d = results.get(("pressure", s), {})
        if not d:
            continue
        if "failed" in d or "hit_ratio" not in d:
            L.append(f"| {s} | failed |" + " |" * 8)
            continue
        st = d.get("store_end") or {}
        store = f"{_num(st.get('entries'))} entries, {_num(st.get('bytes'), 1 / 2**20, 1)} MiB"
        if d.get("tmpfs_peak_mib") is not None:
            store += (f" (files on tmpfs during the run: mean {_num(d.get('tmpfs_mean_mib'), 1, 1)}, "
                      f"peak {d['tmpfs_peak_mib']:.1f} MiB)")
        if st.get("evictions") is not None:
            store += f", {st['evictions']:,} evicted"
        L.append(f"| {s} | {100 * d['hit_ratio']:.2f} | {100 * d['byte_hit_ratio']:.2f} | {d['requests']:,} | "
                 f"{d['origin']:,} | {d['saved']:,} | {d['origin_bytes'] / 2**20:,.1f} / {d['saved_bytes'] / 2**20:,.1f} | "
                 f"{store} | {d['replay_s']:.1f} | {_num(d.get('rss_mib'), 1, 1)} |")
    L.append("")
    tc = results.get(("pressure", "tagcache"), {})
    others, over = {}, []
    for s in cols:
        d = results.get(("pressure", s), {})
        if s == "tagcache" or not isinstance(d.get("hit_ratio"), (int, float)):
            continue
        if over_budget(d):
            over.append(f"{s} ({100 * d['hit_ratio']:.2f} % with {d['tmpfs_mean_mib']:.0f} MiB on average)")
        else:
            others[s] = d["hit_ratio"]
    if "hit_ratio" in tc and others:
        best = max(others, key=others.get)
        verdict = "met" if all(tc["hit_ratio"] > v for v in others.values()) else "not met"
        line = (f"- Goal \"a higher hit ratio than nginx and Varnish with the same memory\": tagcache "
                f"{100 * tc['hit_ratio']:.2f} %, best peer held to the same memory {best} "
                f"{100 * others[best]:.2f} %: **{verdict}**")
        if over:
            line += f"; left out as over its memory: {', '.join(over)}"
        L.append(line + ".")
        L.append("")
    elif "hit_ratio" in tc and over:
        L.append(f"- Goal \"a higher hit ratio than nginx and Varnish with the same memory\": no peer stayed within "
                 f"the same memory ({', '.join(over)}): **not measured**.")
        L.append("")
    return L


def over_budget(d):
    """Whether a pressure result's server held clearly more than its memory
    on average (nginx, whose cache manager trims only every 10 s or so)."""
    return (d.get("tmpfs_mean_mib") or 0) > 1.1 * d.get("memory_mib", 0)


def markdown_latency(run, results, cols):
    """The section of workload latency: fixed-rate open-loop load at shares
    of each server's own peak."""
    rates = getattr(run, "latency_rates", [])
    fixed = getattr(run, "latency_fixed", [])
    shares = f"{' and '.join(f'{r} %' for r in rates)} of that peak"
    if fixed:
        shares += f" and at {' and '.join(f'{r:,} req/s' for r in fixed)} (the same rates for every server)"
    L = ["## Latency at fixed rates, without coordinated omission", ""]
    L.append(f"Each server on its core, as in (a). First its peak on the hot key (wrk, closed loop, {run.conns} "
             f"connections, {run.duration} s), then `examples/bench_load.rs` at "
             f"{shares}, {run.conns} connections, {run.duration} s "
             "after 1 s of warm-up: each connection sends on a fixed schedule, and each request's latency is "
             "measured from when it was due, so a stall is charged to every request it delayed (what wrk2 "
             "does). \"Send lag\" is how late requests left (a busy connection or a late generator); a run that "
             f"sent under {100 * RATE_HELD:.0f} % of its target did not hold the rate.")
    L.append("")
    L.append("| server | peak req/s | rate | target req/s | sent req/s | p50 ms | p99 ms | p99.9 ms | max ms | "
             "send lag p99 ms | errors / non-2xx | server CPU % |")
    L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for s in cols:
        d = results.get(("latency", s), {})
        if not d:
            continue
        if "failed" in d or "rates" not in d:
            L.append(f"| {s} | failed |" + " |" * 10)
            continue
        shown = [(f"{pct} %", d["rates"].get(str(pct))) for pct in rates]
        shown += [("same for all", d.get("fixed", {}).get(str(rps))) for rps in fixed]
        for what, r in shown:
            if r is None:
                continue
            held = "" if r["rps"] >= RATE_HELD * r["target_rps"] else " (not held)"
            L.append(f"| {s} | {d['peak_rps']:,.0f} | {what} | {r['target_rps']:,.0f} | {r['rps']:,.0f}{held} | "
                     f"{r['p50'] / 1e3:.3f} | {r['p99'] / 1e3:.3f} | {r['p999'] / 1e3:.3f} | {r['max'] / 1e3:.2f} | "
                     f"{r['lag_p99'] / 1e3:.3f} | {r['errors']} / {r['non2xx']} | {r.get('cpu_pct', 0):.0f} |")
    L.append("")
    return L


# The rows of a processor's summary table: (workload, label, field getter,
# scale, digits, "higher is better").
def _summary_rows(run):
    rows = []
    if "hot" in run.workloads:
        rows += [("hot", "(a) hot key, req/s", lambda d: d.get("rps"), 1, 0),
                 ("hot", "(a) hot key, p99 ms", lambda d: d.get("p99"), 1e-3, 2)]
    if "zipf" in run.workloads:
        rows += [("zipf", "(b) Zipf 50k, req/s", lambda d: d.get("rps"), 1, 0),
                 ("zipf", "(b) Zipf 50k, p99 ms", lambda d: d.get("p99"), 1e-3, 2)]
    if "twocore" in run.workloads:
        rows += [("twocore", "(a) hot key on 2 shared cores, req/s", lambda d: d.get("hot", {}).get("rps"), 1, 0),
                 ("twocore", "(a) on 2 shared cores, p99 ms", lambda d: d.get("hot", {}).get("p99"), 1e-3, 2),
                 ("twocore", "(b) Zipf on 2 shared cores, req/s", lambda d: d.get("zipf", {}).get("rps"), 1, 0),
                 ("twocore", "(b) on 2 shared cores, p99 ms", lambda d: d.get("zipf", {}).get("p99"), 1e-3, 2)]
    if "pressure" in run.workloads:
        mib = getattr(run, "pressure_mib", "?")
        rows += [("pressure", f"hit ratio %, {mib} MiB under pressure", lambda d: d.get("hit_ratio"), 100, 2),
                 ("pressure", f"byte hit ratio %, {mib} MiB under pressure", lambda d: d.get("byte_hit_ratio"), 100, 2)]
    if "latency" in run.workloads:
        for pct in getattr(run, "latency_rates", []):
            rows.append(("latency", f"p99 ms at {pct} % of own peak (fixed rate)",
                         lambda d, k=str(pct): d.get("rates", {}).get(k, {}).get("p99"), 1e-3, 3))
        for rps in getattr(run, "latency_fixed", []):
            rows.append(("latency", f"p99 ms at {rps:,} req/s, every server (fixed rate)",
                         lambda d, k=str(rps): d.get("fixed", {}).get(k, {}).get("p99"), 1e-3, 3))
    return rows


# The columns of every processor table, so that tables of runs with other
# SERVERS still merge row by row (bench/record.py).
SECTION_SERVERS = ("tagcache", "nginx", "varnish")


def processor_section(run, results):
    """This run's headline figures as the section of docs/benchmarks.md that
    holds its processor's table (see bench/record.py): a heading with the
    processor model and the date, one row per figure with tagcache ÷ nginx
    and the run it comes from (date and git revision), so that rows of
    later runs with other workloads can replace some rows and keep others."""
    run = types.SimpleNamespace(**run)
    model = run.machine.get("cpu_model") or "?"
    rev = re.search(r"\(git ([^),]+)", run.versions or "")
    source = f"{run.started:%Y-%m-%d}" + (f", git {rev.group(1)}" if rev else "")
    L = [f"### {model}, {run.started:%Y-%m-%d}", ""]
    rounds = f", {run.rounds} round(s) of (a) and (b)" if {"hot", "zipf"} & set(run.workloads) else ""
    L.append(f"{machine_line(run.machine)}. Latest run: {run.versions.split(';')[0]}, `bench/run.sh` with "
             f"WORKLOADS={','.join(run.workloads)}, {run.duration} s per run{rounds}.")
    L.append("")
    L.append("| figure | " + " | ".join(SECTION_SERVERS) + " | tagcache ÷ nginx | run |")
    L.append("|---|" + "---:|" * (len(SECTION_SERVERS) + 1) + "---|")
    for w, label, get, scale, digits in _summary_rows(run):
        vals = {}
        for s in SECTION_SERVERS:
            d = results.get((w, s), {}) if s in run.servers else {}
            vals[s] = None if "failed" in d or "skipped" in d else get(d)
        cells = [_num(vals[s], scale, digits) for s in SECTION_SERVERS]
        if w == "pressure":
            # nginx over its memory (its cache manager's 10 s passes): said in the cell.
            cells = [c + (" (over its memory)" if over_budget(results.get((w, s), {})) else "")
                     for c, s in zip(cells, SECTION_SERVERS)]
        cells.append(_div(vals["tagcache"], vals["nginx"]))
        L.append(f"| {label} | " + " | ".join(cells) + f" | {source} |")
    L.append("")
    return "\n".join(L)


def auto_notes(results):
    """Warnings drawn from the results: anything that makes a number suspect."""
    notes = []
    for (w, s), d in results.items():
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
        if w == "twocore" and d.get("second") and d["second"] != "HIT":
            notes.append(f"**twocore/{s}: the second request for the hot key was `{d['second']}`, not HIT.**")
        if w == "twocore":
            for part in ("hot", "zipf"):
                p = d.get(part, {})
                if p.get("errors") or p.get("err_status"):
                    notes.append(f"**twocore/{s} {part}: {p['errors']} socket errors and {p['err_status']} "
                                 "HTTP errors under load.**")
                if (p.get("foreign_cpu_pct") or 0) > 20:
                    notes.append(f"**twocore/{s} {part}: other processes used {p['foreign_cpu_pct']:.0f} % of a core "
                                 "during the run: the machine was not quiet, this number is not comparable.**")
        if w == "pressure" and over_budget(d):
            notes.append(f"**pressure/{s}: its cache files took {d['tmpfs_mean_mib']:.1f} MiB on average during the "
                         f"measured replay (peak {d['tmpfs_peak_mib']:.1f} MiB) for a max_size of {d['memory_mib']} MiB: "
                         "nginx's cache manager trims only every 10 s or so, so nginx had more memory than the others "
                         "here and its hit ratio is not one of the same memory.**")
        if w == "pressure" and d.get("non200"):
            notes.append(f"**pressure/{s}: {d['non200']} non-200 answers during the replay.**")
        if w == "latency" and d.get("second") and d["second"] != "HIT":
            notes.append(f"**latency/{s}: the second request for the hot key was `{d['second']}`, not HIT.**")
        if w == "latency":
            at = [(f"{k} %", r) for k, r in sorted(d.get("rates", {}).items(), key=lambda kv: int(kv[0]))]
            at += [(f"{int(k):,} req/s", r) for k, r in sorted(d.get("fixed", {}).items(), key=lambda kv: int(kv[0]))]
            for what, r in at:
                if r.get("rps", 0) < RATE_HELD * r.get("target_rps", 0):
                    notes.append(f"**latency/{s} at {what}: sent {r['rps']:,.0f} of {r['target_rps']:,.0f} req/s: "
                                 "the rate was not held (server or generator saturated).**")
                if r.get("errors") or r.get("non2xx"):
                    notes.append(f"**latency/{s} at {what}: {r['errors']} errors and {r['non2xx']} non-2xx answers.**")
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
