"""The machine the benchmark runs on: its processor and memory, the versions of
the programs compared, core pinning and scheduling priority."""

import os
import platform
import shutil
import subprocess

# Niceness of every process the benchmark starts (set by raise_priority).
NICE = 0
_saved_autogroup_nice = None


def cpu_model(cpuinfo):
    """The first `model name` in the text of /proc/cpuinfo, or "?"."""
    for line in cpuinfo.splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip() or "?"
    return "?"


def machine_facts():
    """This machine: CPU count, processor model, memory in GiB (None when
    unknown) and kernel release."""
    try:
        with open("/proc/cpuinfo") as f:
            model = cpu_model(f.read())
    except OSError:
        model = "?"
    mem_gib = None
    try:
        with open("/proc/meminfo") as f:
            mem_gib = int(f.readline().split()[1]) / 1024 / 1024
    except (OSError, ValueError, IndexError):
        pass
    return {"cpus": os.cpu_count(), "cpu_model": model, "mem_gib": mem_gib, "kernel": platform.release()}


def versions_line(tagcache_bin, root_dir):
    """The versions of tagcache (with its git revision), nginx, Varnish and wrk."""
    def first(argv):
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            txt = (r.stdout + r.stderr).strip().splitlines()
            return txt[0] if txt else "?"
        except OSError:
            return "not installed"
    rev = first(["git", "-C", root_dir, "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(["git", "-C", root_dir, "status", "--porcelain", "--untracked-files=no", "src"],
                           capture_output=True, text=True).stdout.strip()
    return "; ".join([
        f"{first([tagcache_bin, '--version'])} (git {rev}{', src/ modified' if dirty else ''})",
        first(["nginx", "-v"]),
        first(["varnishd", "-V"]),
        first(["wrk", "-v"]).split(" Copyright")[0],
    ])


class Pinning:
    """Core 0 runs the server under test; core 1 everything else (this driver,
    and so wrk, herd.py and the origin, which inherit its affinity)."""

    def __init__(self):
        self.pinned = False
        self.server_cpu = None
        self.load_cpu = None

    def apply(self):
        """Pins this process to the load core. Returns a note when it cannot."""
        try:
            cpus = sorted(os.sched_getaffinity(0))
        except AttributeError:
            cpus = []
        if len(cpus) >= 2 and shutil.which("taskset"):
            os.sched_setaffinity(0, {cpus[1]})
            self.server_cpu = str(cpus[0])
            self.load_cpu = str(cpus[1])
            self.pinned = True
            return None
        self.server_cpu = self.load_cpu = None
        return "Fewer than 2 CPUs (or no taskset): nothing was pinned."

    def on_server_core(self, argv):
        return (["taskset", "-c", self.server_cpu] + argv) if self.pinned else argv

    def on_all_cores(self, argv):
        """Every core (this driver is pinned to the load core, and children
        inherit that): for the servers and load of workload twocore."""
        return (["taskset", "-c", f"{self.server_cpu},{self.load_cpu}"] + argv) if self.pinned else argv

    def on_load_core(self, argv):
        return (["taskset", "-c", str(self.load_cpu)] + argv) if self.pinned else argv


def set_autogroup_nice(pid, nice):
    """With autogroup scheduling, CPU is shared between sessions first and nice
    only counts inside one: the session's own nice is in /proc/PID/autogroup."""
    if not nice:
        return
    try:
        with open(f"/proc/{pid}/autogroup", "w") as f:
            f.write(str(nice))
    except OSError:
        pass


def get_autogroup_nice(pid="self"):
    try:
        with open(f"/proc/{pid}/autogroup") as f:
            return int(f.read().split("nice")[1])
    except (OSError, IndexError, ValueError):
        return None


def raise_priority(want):
    """Gives this process, its session and everything started later niceness
    `want`. Returns (the niceness in force, a note when it could not be set)."""
    global NICE, _saved_autogroup_nice
    if want == 0:
        return 0, None
    try:
        os.setpriority(os.PRIO_PROCESS, 0, want)
    except OSError as e:
        return 0, f"Could not set niceness {want}: {e}."
    NICE = want
    # The driver's session (wrk, herd.py run in it) too; restored on exit.
    _saved_autogroup_nice = get_autogroup_nice()
    set_autogroup_nice("self", want)
    return want, None


def restore_priority():
    """Gives the session back the niceness it had before raise_priority."""
    global _saved_autogroup_nice
    if _saved_autogroup_nice is not None:
        try:
            with open("/proc/self/autogroup", "w") as f:
                f.write(str(_saved_autogroup_nice))
        except OSError:
            pass
        _saved_autogroup_nice = None
