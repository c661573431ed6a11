"""Where the test suite's CPU goes: runs pytest and counts the CPU time of every process started meanwhile.

    python scripts/suite_cpu.py [PYTEST ARGS...]      # e.g. nothing (the whole suite), or tests/test_hang.py

On two cores the suite is bound by CPU (docs/benchmarks.md): its length is about its CPU time over two
cores. This script samples /proc every 0.5 s, keeps each process's last user+system time, and sums them
by kind of process (task, warm process, launcher, Ray, Slurm, test process, TensorFlow reader) and by the
test whose temp dir its command line names, or its nearest ancestor's. A process that lives less than
half a second may be missed: the figures are a floor.
"""

from __future__ import annotations

import collections
import os
import re
import subprocess
import sys
import threading
import time

HZ = os.sysconf("SC_CLK_TCK")
KINDS = [  # (kind, pattern of the command line), the first that matches
    ("TensorFlow in the tests' helpers", r"import tensorflow"),  # tests/tf_reader.py, conftest.run_with_tf
    ("warm process", r"-m launcher\.task\.warm"),
    ("task process", r"-m launcher\.task( |$)"),
    ("launcher", r"-m launcher( |$)|bin/launcher "),
    ("Ray", r"raylet|gcs_server|^ray::|/ray/|bin/ray "),
    ("Slurm and munge", r"slurm|srun|sbatch|munge|scontrol|squeue|sacct"),
    ("test processes", r"pytest|execnet|exec\(eval\(sys\.stdin"),
]
TEST_DIR = re.compile(r"/pytest-\d+/(?:popen-gw\d+/)?([A-Za-z0-9_]+?)(?:\d+|current)?/")


class Sampler(threading.Thread):
    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.since = _boot_ticks_now()
        self.seen: dict[tuple[int, int], list] = {}  # (pid, start) -> [ppid, cmdline, cpu seconds]
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.5):
            for name in os.listdir("/proc"):
                if name.isdigit():
                    self._sample(int(name))

    def _sample(self, pid: int) -> None:
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
            fields = stat[stat.rindex(")") + 2:].split()
            start = int(fields[19])
            if start < self.since:
                return  # running before the suite began: not the suite's
            cpu = (int(fields[11]) + int(fields[12])) / HZ
            key = (pid, start)
            if key in self.seen:
                self.seen[key][2] = cpu
                return
            with open(f"/proc/{pid}/cmdline") as f:
                cmd = f.read().replace("\0", " ").strip() or stat[stat.index("(") + 1:stat.rindex(")")]
            self.seen[key] = [int(fields[1]), cmd, cpu]
        except (OSError, ValueError, IndexError):
            pass  # ended meanwhile


def _boot_ticks_now() -> int:
    with open("/proc/uptime") as f:
        return int(float(f.read().split()[0]) * HZ)


def kind_of(cmd: str) -> str:
    return next((kind for kind, pattern in KINDS if re.search(pattern, cmd)), "other")


def report(seen: dict) -> str:
    by_pid: dict[int, list] = collections.defaultdict(list)
    for (pid, start), (ppid, cmd, _) in seen.items():
        by_pid[pid].append((start, ppid, cmd))

    def test_of(pid: int, start: int, depth: int = 0):
        for s, ppid, cmd in sorted(by_pid.get(pid, []), reverse=True):
            if s <= start:
                match = TEST_DIR.search(cmd)
                if match:
                    return match.group(1)
                return test_of(ppid, s, depth + 1) if depth < 40 else None
        return None

    kinds, tests = collections.Counter(), collections.Counter()
    for (pid, start), (_, cmd, cpu) in seen.items():
        kinds[kind_of(cmd)] += cpu
        tests[test_of(pid, start) or "(no test: beds, workers, readers)"] += cpu
    lines = [f"CPU time of the processes started during the run: {sum(kinds.values()) / 60:.1f} CPU-minutes"]
    lines += [f"  {cpu / 60:6.1f}  {kind}" for kind, cpu in kinds.most_common()]
    lines.append("by test (CPU-seconds; a test's name cut to its temp dir's):")
    lines += [f"  {cpu:7.1f}  {test}" for test, cpu in tests.most_common(25)]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    sampler = Sampler()
    sampler.start()
    began = time.monotonic()
    code = subprocess.call([sys.executable, "-m", "pytest", "-q", *argv])
    sampler.done.set()
    sampler.join()
    print(f"pytest exited {code} after {time.monotonic() - began:.0f} s")
    print(report(sampler.seen))
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
