"""Unit tests of the doc's per-processor tables (record.py) and of the trace
of workload pressure (tracegen.py). Run: python3 -m unittest discover -s bench"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import record  # noqa: E402
import tracegen  # noqa: E402

DOC = "# Benchmarks\n\nIntro.\n\n## Commands\n\nrun it\n\n## Method\n\nhow\n"


def section(model, date, figure, extra=""):
    return (f"### {model}, {date}\n\nmachine line {date}\n\n| figure | tagcache | run |\n|---|---:|---|\n"
            f"| (a) hot key, req/s | {figure} | {date} |\n{extra}")


class UpdateDoc(unittest.TestCase):
    def test_first_table_creates_the_part(self):
        out = record.update_doc(DOC, section("AMD EPYC 7B13", "2026-11-22", "77,137"))
        self.assertTrue(out.startswith("# Benchmarks\n\nIntro.\n\n## Results by processor\n"))
        self.assertIn("<!-- processor: AMD EPYC 7B13 -->\n### AMD EPYC 7B13, 2026-11-22\n", out)
        self.assertLess(out.index("77,137"), out.index("## Commands"))
        self.assertIn("## Method\n\nhow\n", out)

    def test_other_processor_is_kept_same_processor_replaced(self):
        out = record.update_doc(DOC, section("AMD EPYC 7B13", "2026-11-22", "77,137"))
        out = record.update_doc(out, section("Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz", "2026-11-28", "63,200"))
        self.assertIn("77,137", out)
        self.assertIn("### Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz, 2026-11-28", out)
        self.assertLess(out.index("77,137"), out.index("63,200"))
        again = record.update_doc(out, section("AMD EPYC 7B13", "2026-11-29", "80,001"))
        self.assertNotIn("77,137", again)
        self.assertIn("### AMD EPYC 7B13, 2026-11-29", again)
        self.assertIn("63,200", again)
        self.assertEqual(again.count("<!-- processor:"), 2)
        self.assertEqual(again.count(record.END), 2)
        self.assertLess(again.index("80,001"), again.index("63,200"))
        self.assertEqual(record.update_doc(again, section("AMD EPYC 7B13", "2026-11-29", "80,001")), again)

    def test_rows_of_other_workloads_are_kept(self):
        first = section("AMD EPYC", "2026-11-22", "77,137", "| (b) Zipf 50k, req/s | 64,922 | 2026-11-22 |\n")
        out = record.update_doc(DOC, first)
        later = section("AMD EPYC", "2026-11-29", "80,001", "| hit ratio %, 32 MiB | 78.00 | 2026-11-29 |\n")
        out = record.update_doc(out, later)
        block = out[out.index("<!-- processor: AMD EPYC -->"):out.index(record.END)]
        self.assertIn("### AMD EPYC, 2026-11-29\n\nmachine line 2026-11-29\n", block)
        self.assertNotIn("machine line 2026-11-22", block)
        self.assertEqual([label for label, _ in record.table_rows(block)],
                         ["(a) hot key, req/s", "(b) Zipf 50k, req/s", "hit ratio %, 32 MiB"])
        self.assertIn("| (a) hot key, req/s | 80,001 | 2026-11-29 |", block)
        self.assertIn("| (b) Zipf 50k, req/s | 64,922 | 2026-11-22 |", block)

    def test_model_with_commas(self):
        self.assertEqual(record.section_model("### AMD EPYC, family 25, 2026-11-22\n"), "AMD EPYC, family 25")
        with self.assertRaises(ValueError):
            record.section_model("| not a heading |")


class Trace(unittest.TestCase):
    def test_deterministic_and_seeded(self):
        a = tracegen.make_trace(4 << 20, 10, 5000, seed=1)
        self.assertEqual(a, tracegen.make_trace(4 << 20, 10, 5000, seed=1))
        self.assertNotEqual(a[1], tracegen.make_trace(4 << 20, 10, 5000, seed=2)[1])

    def test_sizes_skew_and_mix(self):
        objects, drawn = tracegen.make_trace(4 << 20, 10, 20000, seed=3)
        s = tracegen.summary(objects, drawn)
        # About 10 x the store's bytes in distinct objects, all paths distinct.
        self.assertAlmostEqual(s["object_bytes"] / (40 << 20), 1.0, delta=0.1)
        self.assertEqual(len({(o[0], o[1]) for o in objects}), len(objects))
        self.assertEqual(s["requests"], 20000)
        # Both sizes asked for; one workspace far above the 1/50 of an even spread.
        self.assertGreater(s["large_share"], 0.1)
        self.assertLess(s["large_share"], 0.3)
        self.assertGreater(s["top_workspace_share"], 0.1)
        # Zipf: the most requested object is asked far more often than the mean.
        counts = {}
        for i in drawn:
            counts[i] = counts.get(i, 0) + 1
        self.assertGreater(max(counts.values()), 50 * len(drawn) / len(objects))
        line = tracegen.trace_lines(objects, drawn[:1])[0]
        ws, path = line.split(" ")
        self.assertTrue(ws.startswith("w") and path.startswith("/api/"))


if __name__ == "__main__":
    unittest.main()
