"""Settings of one benchmark run, read from the environment (the variables are
listed in the header of bench/driver.py), and the driver's log line."""

import os
import sys
import time

ALL_SERVERS = ["tagcache", "nginx", "varnish"]
ALL_WORKLOADS = ["hot", "zipf", "herd", "purge", "full", "ceiling", "l2"]
# Run only when named (WORKLOADS=twocore,pressure,latency, or WORKLOADS=all):
# they answer other questions than the one-core record above.
EXTRA_WORKLOADS = ["twocore", "pressure", "latency"]


def env_int(name, default):
    v = os.environ.get(name, "")
    return int(v) if v.strip() else default


def env_list(name, default):
    v = os.environ.get(name, "")
    return [x.strip() for x in v.split(",") if x.strip()] if v.strip() else list(default)


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Settings:
    """What a run measures and how long; smoke: tagcache alone, workload (a) once."""

    def __init__(self, smoke, root_dir):
        self.smoke = smoke
        self.duration = env_int("DURATION", 5 if smoke else 10)
        self.rounds = max(1, env_int("ROUNDS", 1 if smoke else 3))
        self.conns = env_int("CONNECTIONS", 50)
        self.servers = ["tagcache"] if smoke else [s for s in env_list("SERVERS", ALL_SERVERS) if s in ALL_SERVERS]
        self.workloads = ["hot"] if smoke else env_list("WORKLOADS", ALL_WORKLOADS)
        if self.workloads == ["all"]:
            self.workloads = ALL_WORKLOADS + EXTRA_WORKLOADS
        # twocore: every server on both cores, and wrk with 2 threads beside it.
        self.twocore_conns = env_int("TWOCORE_CONNECTIONS", 100)
        # pressure: a trace over PRESSURE_FACTOR x the store's bytes, replayed once.
        self.pressure_mib = env_int("PRESSURE_MIB", 32)
        self.pressure_factor = env_int("PRESSURE_FACTOR", 10)
        self.pressure_requests = env_int("PRESSURE_REQUESTS", 400000)
        self.pressure_seed = env_int("PRESSURE_SEED", 1)
        self.pressure_conns = env_int("PRESSURE_CONNECTIONS", 8)
        # latency: fixed rates, in % of each server's measured peak.
        self.latency_rates = [int(x) for x in env_list("LATENCY_RATES", ["50", "90"])]
        # The same absolute rates for every server: a server with a higher
        # peak is otherwise measured at a higher rate than its peers.
        self.latency_fixed = [int(x) for x in env_list("LATENCY_FIXED_RPS", [])]
        self.load_bin = os.path.abspath(
            os.environ.get("LOAD_BIN") or os.path.join(root_dir, "target/release/examples/bench_load"))
        self.origin_delay_ms = env_int("ORIGIN_DELAY_MS", 50)
        self.herd_n = env_int("HERD_N", 1000)
        self.herd_delay_ms = env_int("HERD_DELAY_MS", 500)
        self.purge_sizes = [int(x) for x in env_list("PURGE_SIZES", ["1", "10000", "100000"])]
        self.zipf_s = os.environ.get("ZIPF_S", "1.0")
        self.full_contacts = env_int("FULL_CONTACTS", 20000)
        self.full_fill_limit = env_int("FULL_FILL_LIMIT", 120)
        self.quiet_wait = env_int("QUIET_WAIT", 5)
        self.noisy_retries = env_int("NOISY_RETRIES", 1)
        self.tagcache_bin = os.path.abspath(
            os.environ.get("TAGCACHE_BIN") or os.path.join(root_dir, "target/release/tagcache"))
        self.origin_bin = os.path.abspath(
            os.environ.get("ORIGIN_BIN") or os.path.join(root_dir, "target/release/examples/bench_origin"))
        self.token = os.environ.get("TAGCACHE_ADMIN_TOKEN") or "bench-admin-token"
        self.results_path = os.environ.get("RESULTS") or ""
