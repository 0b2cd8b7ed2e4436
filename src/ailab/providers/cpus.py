"""How many threads the embedded model runs when ``AILAB_LOCAL_THREADS`` is 0: the cores it may really use.

``os.cpu_count()`` counts every logical CPU of the machine, which is the wrong figure twice over for
llama.cpp. Its threads wait for each other at every step by spinning, so a thread without a core of its
own slows all the others (on 2 cores with another busy process, two threads ran a generation ~5x slower
than one); and in a container (``docker --cpus 2`` on a 64-core host) or under ``taskset`` the process
may use far fewer CPUs than the machine has. Hyperthreads share the vector units its math runs on, so
llama.cpp's own advice is one thread per physical core.
"""

from __future__ import annotations

import os
from pathlib import Path

import psutil

CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")  # cgroup v2: "<quota> <period>" or "max <period>"


def usable_cores(cpu_max: Path = CGROUP_CPU_MAX) -> int:
    """The CPUs this process may run on (its affinity), no more than the machine's physical cores nor
    than its cgroup's CPU quota; at least 1."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity outside Linux
        cores = os.cpu_count() or 1
    physical = psutil.cpu_count(logical=False)
    if physical:
        cores = min(cores, physical)
    quota = cgroup_cpu_quota(cpu_max)
    if quota is not None:
        cores = min(cores, quota)
    return max(1, cores)


def cgroup_cpu_quota(cpu_max: Path = CGROUP_CPU_MAX) -> int | None:
    """Whole CPUs the cgroup's quota allows (``150000 100000``: 1.5 CPUs, so 1; a thread past the quota
    would be throttled), at least 1; None when there is no quota or no cgroup v2 file to read."""
    try:
        quota, period = cpu_max.read_text().split()[:2]
        return max(1, int(quota) // int(period))
    except (OSError, ValueError, ZeroDivisionError):  # "max": no quota
        return None
