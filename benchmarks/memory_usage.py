"""Resident memory of this process as the benchmarks report it: Linux's /proc/self/status (VmRSS, VmHWM), whose peak
belongs to this process alone; `ru_maxrss` would carry a parent's peak across exec into a child's."""
from __future__ import annotations

import resource


def status_kib(field: str = "VmRSS") -> int:
    """One memory line of /proc/self/status, in KiB (VmRSS: now; VmHWM: the peak since start or a clear_refs reset)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def peak_rss_mib() -> float:
    """This process's peak resident memory in MiB (VmHWM; ru_maxrss where /proc is not there)."""
    try:
        return status_kib("VmHWM") / 1024
    except (OSError, RuntimeError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
