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
