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


def cpus_per_process() -> int:
    """This process's share of :func:`available_cpus`: all of them, or under ``torchrun`` with several
    processes on this node (``WORLD_SIZE`` > 1, ``LOCAL_WORLD_SIZE`` of them here) the CPUs divided among
    them, at least 1. What sizes the default worker processes of each rank: ``M`` ranks each starting
    one worker per CPU would run ``M`` x CPUs processes on the node."""
    try:
        distributed = int(os.environ.get("WORLD_SIZE") or 1) > 1
        local = int(os.environ.get("LOCAL_WORLD_SIZE") or 1) if distributed else 1
    except ValueError:  # not torchrun's numbers: torchrun's own check (join_torchrun) reports them
        local = 1
    return max(1, available_cpus() // max(1, local))
