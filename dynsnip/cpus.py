"""The CPUs this process may use: the one count that sizes loader workers, extraction processes
and the pipelined extraction's threads."""
from __future__ import annotations

import os


def available_cpus() -> int:
    """CPU cores this process may run on: its affinity mask (as PyTorch's DataLoader counts them
    when it warns about too many workers; a container or ``taskset`` narrows it), else the
    machine's count; at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return max(1, os.cpu_count() or 1)
