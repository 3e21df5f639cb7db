"""Unit tests of the report (report.py) and of reading the processor model
(host.cpu_model). Run: python3 -m unittest discover -s bench"""

import copy
import datetime
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import host  # noqa: E402
import report  # noqa: E402

UTC = datetime.timezone.utc


def run_facts(**over):
    run = {
        "started": datetime.datetime(2026, 11, 22, 14, 35, tzinfo=UTC),
        "finished": datetime.datetime(2026, 11, 22, 14, 42, 30, tzinfo=UTC),
        "machine": {"cpus": 2, "cpu_model": "AMD EPYC 7B13", "mem_gib": 24.0, "kernel": "6.1.0"},
        "versions": "tagcache 0.1.0 (git abc1234); nginx version: nginx/1.22.1",
        "pinned": True, "nice": -19,
        "servers": ["tagcache", "nginx", "varnish"],
        "workloads": ["hot", "purge", "full", "l2"],
        "conns": 50, "duration": 10, "rounds": 3, "probe_seconds": 5,
        "origin_delay_ms": 50, "herd_n": 1000, "herd_delay_ms": 500, "zipf_s": "1.0",
        "purge_sizes": [1, 10000], "full_contacts": 20000,
        "notes": ["Could not set niceness -19: denied."],
    }
    run.update(over)
    return run


def hot(rps, second="HIT", origin=1, **extra):
    d = {"rps": rps, "p50": 600, "p99": 1300, "p999": 3900, "origin": origin, "cpu_pct": 99.0,
         "rss_mib": 20.0, "first": "MISS", "second": second, "requests": rps * 10, "errors": 0, "err_status": 0}
    d.update(extra)
    return d


def purge_rec(after, status=200):
    return {"fill_s": 1.5, "fill_origin": 10, "fill_non200": 0, "before": ["HIT", "HIT"], "purge_ms": 0.25,
            "purge_status": status, "purge_body": '{"purged":1}', "after": after, "again": ["HIT", "HIT"]}


def full(rss_mib):
    return {"contacts": 20000, "fill_contacts_s": 10.0, "fill_contacts_origin": 20000, "fill_contacts_non200": 0,
            "fill_lists_s": 5.0, "fill_lists_origin": 50000, "fill_lists_non200": 0, "fill_s": 15.0,
            "fill_non200": 0, "contact_check": ["HIT", "MISS"], "rss_fill_mib": rss_mib, "rss_now_fill_mib": 250.0,
            "store_fill": {"entries": 60000, "bytes": 260 * 2**20, "evictions": 5000}, "store_end": {"bytes": 2**28},
            "rps": 50000.0, "p99": 2000, "hit_ratio": 0.99, "rss_mib": rss_mib, "rss_now_mib": 260.0,
            "requests": 500000, "errors": 0, "err_status": 0}


def results(over=None):
    r = {
        ("hot", "tagcache"): hot(80000.0),
        ("hot", "nginx"): hot(40000.0),
        ("hot", "varnish"): {"failed": "RuntimeError: varnish did not start\nlog tail", "log": "line 1\nline 2"},
        ("purge", "tagcache"): {"sizes": {"1": purge_rec(["MISS", "MISS"]), "10000": purge_rec(["MISS", "MISS"])}},
        ("purge", "nginx"): {"skipped": "n/a: nginx (open source) has no tag purge"},
        ("full", "tagcache"): full(300.0),
        ("l2", "tagcache"): dict(hot(30000.0), layer="REDIS", redis_rss_mib=8.0, lat1_rps=4000.0, lat1_p50=200,
                                 lat1_p99=800, lat1_p999=1200, lat1_cpu_pct=40.0),
        ("l2-unix", "tagcache"): {"skipped": "L2 not available in this build", "check": "unknown key redis"},
    }
    r.update(over or {})
    return r


def row(md, start):
    """The first markdown line that starts with `start`, split into cells."""
    for line in md.splitlines():
        if line.startswith(start):
            return [c.strip() for c in line.strip("|").split("|")]
    raise AssertionError(f"no line starts with {start!r}")


class CpuModel(unittest.TestCase):
    def test_first_model_name(self):
        text = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\n\nprocessor\t: 1\nmodel name\t: other\n"
        self.assertEqual(host.cpu_model(text), "AMD EPYC 7B13")

    def test_no_model_name(self):
        # arm64 kernels have no `model name` line.
        self.assertEqual(host.cpu_model("processor\t: 0\nBogoMIPS\t: 50.00\nCPU part\t: 0xd0c\n"), "?")


class Markdown(unittest.TestCase):
    def test_processor_and_machine(self):
        md = report.render_markdown(run_facts(), results())
        self.assertIn("- Processor: AMD EPYC 7B13\n", md)
        self.assertIn("- Machine: 2 CPUs, 24 GiB RAM, Linux 6.1.0\n", md)
        self.assertIn("Run 2026-11-22 14:35 UTC, 450 s in all.", md)
        self.assertIn("all at nice -19", md)
        unknown = run_facts(machine={"cpus": 1, "cpu_model": "?", "mem_gib": None, "kernel": "6.1.0"})
        self.assertIn("- Machine: 1 CPUs, ? RAM, Linux 6.1.0\n", report.render_markdown(unknown, results()))

    def test_cells_and_ratios(self):
        md = report.render_markdown(run_facts(), results())
        self.assertIn("| workload | metric | tagcache | nginx | varnish | tagcache ÷ nginx | tagcache ÷ varnish |", md)
        self.assertEqual(row(md, "| (a) hot key | req/s |"), ["(a) hot key", "req/s", "80,000", "40,000", "failed", "2.00", "-"])
        self.assertEqual(row(md, "| (a) hot key | p99 ms |")[2:5], ["1.30", "1.30", "failed"])
        purge = row(md, "| (d) purge 1 tag = 10,000 entries | purge request ms |")
        self.assertEqual(purge[2:4], ["0.25", "n/a"])
        samples = row(md, "| (d) purge 1 tag = 1 entries | samples before → after |")
        self.assertEqual(samples[2], "HIT/HIT → MISS/MISS")

    def test_failures_and_notes(self):
        md = report.render_markdown(run_facts(), results())
        self.assertIn("- **hot/varnish failed**: `RuntimeError: varnish did not start`", md)
        self.assertIn("- Could not set niceness -19: denied.", md)
        self.assertNotIn("not HIT", md)
        bad = results({("hot", "nginx"): hot(40000.0, second="MISS", origin=3),
                         ("purge", "tagcache"): {"sizes": {"1": purge_rec(["HIT", "MISS"])}}})
        md = report.render_markdown(run_facts(), bad)
        self.assertIn("**nginx: the second request for the hot key was `MISS`, not HIT.**", md)
        self.assertIn("**nginx: the hot key reached the origin 3 times.**", md)
        self.assertIn("**purge/tagcache 1: after the purge the samples were ['HIT', 'MISS'] (purge status 200).**", md)

    def test_goals(self):
        md = report.render_markdown(run_facts(), results())
        self.assertIn("tagcache peak RSS 300.0 MiB = 0.94 × 320 MiB: **met**", md)
        self.assertIn("goal \"L2 hit p99 < 1 ms\", read at 1 connection: p99 0.800 ms = 0.80 × the goal: **met**", md)
        self.assertIn("Redis on the server core, unix socket: L2 not available in this build.", md)
        md = report.render_markdown(run_facts(), results({("full", "tagcache"): full(400.0)}))
        self.assertIn("tagcache peak RSS 400.0 MiB = 1.25 × 320 MiB: **not met**", md)

    def test_subset_without_peers(self):
        run = run_facts(servers=["tagcache"], workloads=["hot"], nice=0, pinned=False, notes=[])
        md = report.render_markdown(run, {("hot", "tagcache"): hot(1000.0)})
        self.assertIn("| workload | metric | tagcache |\n", md)
        self.assertIn("- Pinning: none\n", md)
        self.assertNotIn("## Full cache", md)
        self.assertNotIn("(d) purge", md)

    def test_pure(self):
        run, res = run_facts(), results()
        run_copy, res_copy = copy.deepcopy(run), copy.deepcopy(res)
        first = report.render_markdown(run, res)
        self.assertEqual(first, report.render_markdown(run, res))
        self.assertEqual((run, res), (run_copy, res_copy))


def wrk_part(rps, p99, cpu=150.0):
    return {"rps": rps, "p50": 900, "p99": p99, "p999": 5000, "origin": 0, "cpu_pct": cpu, "load_cpu_pct": 45.0,
            "foreign_cpu_pct": 2.0, "errors": 0, "err_status": 0}


def twocore(hot_rps, zipf_rps, second="HIT"):
    return {"first": "MISS", "second": second, "conns": 100, "hot": wrk_part(hot_rps, 2100),
            "zipf": dict(wrk_part(zipf_rps, 2500), fill_s=4.0, fill_non200=0)}


def pressure(hit, byte_hit, origin, tmpfs=None):
    d = {"memory_mib": 32, "warm_s": 3.0, "warm_requests": 50000, "warm_origin": 20000, "requests": 150000, "bytes": 800 * 2**20, "non200": 0, "hits_said": 150000 - origin,
         "origin": origin, "origin_bytes": (1 - byte_hit) * 800 * 2**20, "hit_ratio": hit, "byte_hit_ratio": byte_hit,
         "saved": 150000 - origin, "saved_bytes": byte_hit * 800 * 2**20, "replay_s": 12.5, "rss_mib": 60.0,
         "store_end": {"entries": 9000, "bytes": 31 * 2**20, "evictions": 40000},
         "trace": {"objects": 57260, "object_bytes": 337080800, "requests": 200000, "requested_bytes": 1070380100,
                   "distinct_requested": 30499, "large_share": 0.17, "top_workspace_share": 0.21,
                   "warm_requests": 50000}}
    if tmpfs is not None:
        d["tmpfs_peak_mib"] = tmpfs
        d["tmpfs_mean_mib"] = tmpfs - 10
        del d["store_end"]["evictions"]
    return d


def rate(target, sent, p99, errors=0):
    return {"requests": int(sent * 10), "target_rps": target, "rps": sent, "p50": 80.0, "p90": 120.0, "p99": p99,
            "p999": 2 * p99, "max": 9000.0, "lag_p50": 3.0, "lag_p99": 40.0, "lag_p999": 300.0, "errors": errors,
            "non2xx": 0, "cpu_pct": 60.0}


def latency(peak, r50, r90):
    return {"first": "MISS", "second": "HIT", "peak_rps": peak, "peak_p50": 600, "peak_p99": 1300,
            "peak_p999": 3000, "cpu_pct": 99.0, "rates": {"50": r50, "90": r90}, "origin": 1}


def new_results():
    return {
        ("twocore", "tagcache"): twocore(100000.0, 80000.0),
        ("twocore", "nginx"): twocore(80000.0, 80000.0),
        ("twocore", "varnish"): {"failed": "RuntimeError: varnish did not start"},
        ("pressure", "tagcache"): pressure(0.78, 0.70, 33000),
        ("pressure", "nginx"): pressure(0.65, 0.55, 52500, tmpfs=40.5),
        ("pressure", "varnish"): pressure(0.70, 0.62, 45000),
        ("latency", "tagcache"): latency(70000.0, rate(35000.0, 35000.0, 150.0), rate(63000.0, 62900.0, 900.0)),
        ("latency", "nginx"): latency(60000.0, rate(30000.0, 30000.0, 200.0), rate(54000.0, 40000.0, 80000.0, 3)),
    }


def new_run(**over):
    facts = {"workloads": ["hot", "twocore", "pressure", "latency"], "twocore_conns": 100, "pressure_mib": 32,
             "pressure_factor": 10, "latency_rates": [50, 90]}
    facts.update(over)
    return run_facts(**facts)


class NewWorkloads(unittest.TestCase):
    def test_twocore(self):
        md = report.render_markdown(new_run(), results(new_results()))
        self.assertIn("## Two cores, shared with the load generator", md)
        self.assertIn("restarted empty before each workload (except: 2 workers on both cores in twocore; 32 MiB in "
                      "pressure).", md)
        self.assertIn("**A shared-core figure**", md)
        self.assertEqual(row(md, "| (a) hot key, 2 cores | req/s |"),
                         ["(a) hot key, 2 cores", "req/s", "100,000", "80,000", "failed", "1.25", "-"])
        self.assertEqual(row(md, "| (b) Zipf 50k, 2 cores | p99 ms |")[2:4], ["2.50", "2.50"])
        self.assertEqual(row(md, "| (a) hot key, 2 cores | server CPU % |")[2:], ["150", "150", "failed", "", ""])
        self.assertIn("(a): 100,000 vs 80,000 req/s = 1.25 ×: **met** (shared cores).", md)
        self.assertIn("- twocore/tagcache: first request `MISS`, second `HIT`; hot 0 requests, 0 socket errors", md)
        self.assertIn("(b): 80,000 vs 80,000 req/s = 1.00 ×: **not met** (shared cores).", md)
        bad = results({**new_results(), ("twocore", "nginx"): twocore(1.0, 1.0, second="MISS")})
        self.assertIn("**twocore/nginx: the second request for the hot key was `MISS`, not HIT.**",
                      report.render_markdown(new_run(), bad))

    def test_pressure(self):
        md = report.render_markdown(new_run(), results(new_results()))
        self.assertIn("## Efficiency under memory pressure: 32 MiB each, a trace over 10 × that", md)
        self.assertIn("The trace: 57,260 objects, 321 MiB in all (30,499 of them requested), 200,000 requests "
                      "(50,000 warm-up)", md)
        tc = row(md, "| tagcache | 78.00 |")
        self.assertEqual(tc[1:7], ["78.00", "70.00", "150,000", "33,000", "117,000", "240.0 / 560.0"])
        self.assertEqual(tc[7], "9,000 entries, 31.0 MiB, 40,000 evicted")
        self.assertIn("(files on tmpfs during the run: mean 30.5, peak 40.5 MiB)", row(md, "| nginx | 65.00 |")[7])
        self.assertNotIn("pressure/nginx: its cache files took", md)
        over = results({**new_results(), ("pressure", "nginx"): pressure(0.9, 0.9, 15000, tmpfs=100.0)})
        md_over = report.render_markdown(new_run(), over)
        self.assertIn("**pressure/nginx: its cache files took 90.0 MiB on average during the measured replay "
                      "(peak 100.0 MiB) for a max_size of 32 MiB", md_over)
        self.assertIn("best peer held to the same memory varnish 70.00 %: **met**; left out as over its memory: "
                      "nginx (90.00 % with 90 MiB on average).", md_over)
        self.assertIn("tagcache 78.00 %, best peer held to the same memory varnish 70.00 %: **met**.", md)
        worse = results({**new_results(), ("pressure", "tagcache"): pressure(0.68, 0.6, 48000)})
        self.assertIn("tagcache 68.00 %, best peer held to the same memory varnish 70.00 %: **not met**.",
                      report.render_markdown(new_run(), worse))

    def test_latency(self):
        md = report.render_markdown(new_run(), results(new_results()))
        self.assertIn("## Latency at fixed rates, without coordinated omission", md)
        self.assertIn("at 50 % and 90 % of that peak", md)
        self.assertEqual(row(md, "| tagcache | 70,000 | 90 % |")[3:9],
                         ["63,000", "62,900", "0.080", "0.900", "1.800", "9.00"])
        self.assertEqual(row(md, "| nginx | 60,000 | 90 % |")[4], "40,000 (not held)")
        self.assertIn("**latency/nginx at 90 %: sent 40,000 of 54,000 req/s: the rate was not held", md)
        self.assertIn("**latency/nginx at 90 %: 3 errors and 0 non-2xx answers.**", md)
        self.assertNotIn("latency/tagcache at", md)
        self.assertIn("- latency/tagcache: first request `MISS`, second `HIT`; peak 70,000 req/s (closed loop: "
                      "p50 0.60 ms, p99 1.30 ms) at 99 % of its core", md)

    def test_latency_at_the_same_rate_for_every_server(self):
        res = new_results()
        res[("latency", "tagcache")]["fixed"] = {"30000": rate(30000.0, 30000.0, 700.0)}
        res[("latency", "nginx")]["fixed"] = {"30000": rate(30000.0, 25000.0, 600.0)}
        run = new_run(latency_fixed=[30000])
        md = report.render_markdown(run, results(res))
        self.assertIn("at 50 % and 90 % of that peak and at 30,000 req/s (the same rates for every server)", md)
        self.assertEqual(row(md, "| tagcache | 70,000 | same for all |")[3:7], ["30,000", "30,000", "0.080", "0.700"])
        self.assertEqual(row(md, "| nginx | 60,000 | same for all |")[4], "25,000 (not held)")
        self.assertIn("**latency/nginx at 30,000 req/s: sent 25,000 of 30,000 req/s: the rate was not held", md)
        section = report.processor_section(run, results(res))
        line = next(l for l in section.splitlines() if l.startswith("| p99 ms at 30,000 req/s, every server"))
        self.assertIn("| 0.700 | 0.600 |", line)

    def test_absent_without_the_workloads(self):
        md = report.render_markdown(run_facts(), results())
        for title in ("## Two cores", "## Efficiency under memory pressure", "## Latency at fixed rates"):
            self.assertNotIn(title, md)

    def test_processor_section(self):
        sec = report.processor_section(new_run(), results(new_results()))
        self.assertTrue(sec.startswith("### AMD EPYC 7B13, 2026-11-22\n"))
        self.assertIn("| figure | tagcache | nginx | varnish | tagcache ÷ nginx | run |", sec)
        run = "2026-11-22, git abc1234"
        self.assertEqual(row(sec, "| (a) hot key, req/s |"), ["(a) hot key, req/s", "80,000", "40,000", "-", "2.00", run])
        self.assertEqual(row(sec, "| (a) hot key on 2 shared cores, req/s |")[1:],
                         ["100,000", "80,000", "-", "1.25", run])
        self.assertEqual(row(sec, "| hit ratio %, 32 MiB under pressure |")[1:5], ["78.00", "65.00", "70.00", "1.20"])
        self.assertEqual(row(sec, "| p99 ms at 90 % of own peak (fixed rate) |")[1:5], ["0.900", "80.000", "-", "0.01"])
        self.assertNotIn("(b) Zipf 50k, req/s", sec)
        self.assertIn("2 CPUs, 24 GiB RAM, Linux 6.1.0. Latest run: tagcache 0.1.0 (git abc1234), `bench/run.sh` with "
                      "WORKLOADS=hot,twocore,pressure,latency, 10 s per run, 3 round(s) of (a) and (b).", sec)
        over = results({**new_results(), ("pressure", "nginx"): pressure(0.9, 0.9, 15000, tmpfs=100.0)})
        sec_over = report.processor_section(new_run(workloads=["pressure"]), over)
        self.assertEqual(row(sec_over, "| hit ratio %, 32 MiB under pressure |")[1:4],
                         ["78.00", "90.00 (over its memory)", "70.00"])
        self.assertIn("WORKLOADS=pressure, 10 s per run.", sec_over)
        # A server left out of the run is a "-" column, so tables of runs still merge.
        alone = report.processor_section(new_run(servers=["tagcache"]), results(new_results()))
        self.assertEqual(row(alone, "| (a) hot key, req/s |")[1:5], ["80,000", "-", "-", "-"])


class Json(unittest.TestCase):
    def test_results_and_machine(self):
        out = report.render_json(run_facts(), results())
        self.assertEqual(out["machine"]["cpu_model"], "AMD EPYC 7B13")
        self.assertEqual(out["hot/tagcache"]["rps"], 80000.0)
        self.assertEqual(out["purge/nginx"], {"skipped": "n/a: nginx (open source) has no tag purge"})
        back = json.loads(json.dumps(out, sort_keys=True))
        self.assertEqual(back["machine"], {"cpus": 2, "cpu_model": "AMD EPYC 7B13", "mem_gib": 24.0, "kernel": "6.1.0"})


if __name__ == "__main__":
    unittest.main()
