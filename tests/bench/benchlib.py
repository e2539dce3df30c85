"""Helpers the benches share: CPU time of a process and percentiles."""
import os


def cpu_ns(pid):
    """Time on a CPU of every thread of the process, in ns (schedstat: finer
    than the 10 ms ticks of /proc/PID/stat)."""
    total = 0
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{t}/schedstat") as f:
                total += int(f.read().split()[0])
        except OSError:
            pass
    return total


def pct(xs, p):
    """The p-th percentile of xs (nearest rank); nan when xs is empty."""
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p / 100))] if xs else float("nan")
