"""``torchrun`` + DistributedDataParallel helpers (PyTorch's own engine, nothing added).

Launch any ``dynsnip train`` / ``dynsnip evaluate`` command under ``torchrun``::

    torchrun --nproc_per_node 8 -m dynsnip train ...                    # one node, 8 GPUs
    torchrun --nnodes 2 --node_rank R --master_addr HOST --master_port 29500 \\
             --nproc_per_node 8 -m dynsnip train ...                    # two nodes

``torchrun`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` (and the rendezvous address);
:func:`init_distributed` reads them, picks ``nccl`` on GPUs and ``gloo`` on CPUs, and binds
each process to GPU ``LOCAL_RANK``. Without those variables everything runs in one process.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Sequence

import torch
import torch.distributed as dist

__all__ = [
    "DistInfo",
    "init_distributed",
    "cleanup_distributed",
    "is_main_process",
    "barrier",
    "all_gather_objects",
    "broadcast_object",
    "all_reduce_mean",
    "any_rank",
    "broadcast_buffers",
    "unwrap_model",
    "join_torchrun",
    "sharded_timeout_s",
    "rank_zero_view",
    "wait_for_ranks",
    "gather_shards",
    "ShardMismatchError",
]


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: ``rank`` of ``world_size``, ``local_rank`` on its node, ``device``."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value in (None, ""):
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not an integer (set by torchrun)") from None


def init_distributed(device: str | torch.device | None = None, backend: str | None = None, timeout_s: float = 1800) -> DistInfo:
    """Join the process group ``torchrun`` describes, or return a single-process DistInfo.

    Args:
        device: ``"cuda"``, ``"cpu"`` or None (CUDA when available). Under ``torchrun`` each
            process takes GPU ``LOCAL_RANK``.
        backend: process-group backend; default ``nccl`` for CUDA, ``gloo`` for CPU.
        timeout_s: collective timeout.

    Raises:
        RuntimeError: CUDA asked for but missing, or fewer GPUs on the node than
            ``LOCAL_RANK`` needs.
    """
    world_size = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", 0)
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("device 'cuda' requested but PyTorch sees no CUDA GPU; use --device cpu")
        if device.index is None:
            if local_rank >= torch.cuda.device_count():
                raise RuntimeError(
                    f"LOCAL_RANK={local_rank} but this node has {torch.cuda.device_count()} GPUs; "
                    "start at most one process per GPU (torchrun --nproc_per_node)"
                )
            device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if world_size > 1 and not dist.is_initialized():
        backend = backend or ("nccl" if device.type == "cuda" else "gloo")
        dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_s))
    if dist.is_initialized():
        rank, world_size = dist.get_rank(), dist.get_world_size()
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=device)


def cleanup_distributed() -> None:
    """Leave the process group (no-op when not distributed)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def is_main_process() -> bool:
    return not _active() or dist.get_rank() == 0


def barrier() -> None:
    if _active():
        dist.barrier()


def all_gather_objects(obj: Any) -> list[Any]:
    """``[obj of rank 0, obj of rank 1, ...]`` on every rank (``[obj]`` when not distributed)."""
    if not _active():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank."""
    if not _active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def any_rank(flag: bool, device: torch.device | None = None) -> bool:
    """True on every rank when ``flag`` is true on any rank (``flag`` when not distributed)."""
    if not _active():
        return bool(flag)
    t = torch.tensor([1.0 if flag else 0.0], dtype=torch.float32, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def all_reduce_mean(value: float, device: torch.device | None = None) -> float:
    """Mean of a Python number over ranks."""
    if not _active():
        return float(value)
    t = torch.tensor([float(value)], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.item() / dist.get_world_size()


def broadcast_buffers(model: torch.nn.Module, src: int = 0) -> None:
    """Copy rank ``src``'s buffers (BatchNorm running statistics) to every rank.

    DDP keeps parameters identical but each rank updates its BatchNorm statistics with its
    own batches after DDP's per-forward broadcast; before evaluating (each rank scores part
    of the set) or saving, all ranks must hold the same statistics.
    """
    if not _active():
        return
    for buffer in unwrap_model(model).buffers():
        dist.broadcast(buffer.data, src=src)


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The module inside a DistributedDataParallel (or ``torch.compile``) wrapper."""
    while True:
        if isinstance(model, torch.nn.parallel.DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


# how long the ranks of a sharded command wait for each other (for the slowest rank's shard, at the end)
SHARDED_TIMEOUT_ENV = "DYNSNIP_TORCHRUN_TIMEOUT_S"
SHARDED_TIMEOUT_S = 7 * 24 * 3600.0


def sharded_timeout_s() -> float:
    """Seconds a rank of a sharded command waits in a collective: ``$DYNSNIP_TORCHRUN_TIMEOUT_S``, default
    7 days. The ranks meet at the start and when the last one has finished its shard; a rank done
    hours before the slowest one waits that long, so the default is long (a rank that dies does not
    leave the others waiting: torchrun stops them).

    Raises:
        ValueError: the variable is set to something else than a positive number of seconds.
    """
    value = os.environ.get(SHARDED_TIMEOUT_ENV)
    if value in (None, ""):
        return SHARDED_TIMEOUT_S
    try:
        seconds = float(value)
    except ValueError:
        seconds = float("nan")
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"environment variable {SHARDED_TIMEOUT_ENV}={value!r}: expected a positive number of seconds "
                         f"(how long ranks wait for the slowest one's shard; unset: {SHARDED_TIMEOUT_S:.0f}, 7 days)")
    return seconds


def join_torchrun(device: str | torch.device | None = None) -> DistInfo | None:
    """:func:`init_distributed` when started by ``torchrun`` with more than one process
    (``WORLD_SIZE`` > 1), else None: for commands that shard their inputs across ranks. Their
    collectives wait :func:`sharded_timeout_s` (7 days by default, not 30 minutes: the ranks
    meet only when the slowest has finished its shard).

    Raises:
        ValueError: a bad ``$DYNSNIP_TORCHRUN_TIMEOUT_S`` (:func:`sharded_timeout_s`).
    """
    if _env_int("WORLD_SIZE", 1) <= 1:
        return None
    return init_distributed(device, timeout_s=sharded_timeout_s())


def wait_for_ranks(device: torch.device | None = None, poll_s: float = 0.2) -> None:
    """Return once every rank has called it (at once when not distributed): a barrier that Python
    signal handlers interrupt. A blocking collective holds the main thread in C++, where Ctrl-C
    or SIGTERM are not handled until it returns: a rank that finished its shard first could not
    report it when stopped while the others work. Here the rank polls an asynchronous all-reduce,
    so a signal raises (KeyboardInterrupt, see :mod:`dynsnip.cli.interrupts`) in its wait."""
    if not _active():
        return
    work = dist.all_reduce(torch.zeros(1, device=device), async_op=True)
    try:
        while not work.is_completed():
            time.sleep(poll_s)
    except BaseException:  # interrupted with the collective pending: leave the group now, or a process
        cleanup_distributed()  # backend thread still waiting aborts the interpreter at exit
        raise
    work.wait()  # raises what ended the collective (a rank gone, the timeout)


def rank_zero_view(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (``obj`` when not distributed): what the ranks shard.

    Each rank finding the inputs itself can see another list (a folder still being filled,
    file-system caches on other nodes): sharded, the merged results would list one input
    twice and lose another. So the commands that shard (``predict``, ``extract-faces``)
    find their inputs on every rank, then all work from rank 0's list.
    """
    return broadcast_object(obj)


class ShardMismatchError(RuntimeError):
    """A rank's part of :func:`gather_shards` is not its shard of the inputs: another length, or
    other inputs (the ranks did not shard one list)."""


def _first_difference(done: list[str], expected: list[str]) -> str:
    for i, (a, b) in enumerate(zip(done, expected)):
        if a != b:
            return f"its input {i} is {a}, expected {b}"
    if len(done) > len(expected):
        return f"it has {done[len(expected)]} beyond them"
    return f"it lacks {expected[len(done)]}"


def gather_shards(mine: Sequence[Any], names: Sequence[str], info: DistInfo) -> list[Any]:
    """Every rank's results in input order, on every rank.

    Rank r computed ``mine`` for inputs r, r + world, r + 2 world, ... (its shard of the
    inputs named ``names``, the same list on every rank: :func:`rank_zero_view`); the shards are
    gathered with the names of the inputs each rank did and interleaved back into one list.

    Raises:
        ShardMismatchError: a rank's part is not its shard of ``names`` (as this rank sees
            them): other inputs, or not one result per input. Merged, such parts would list
            an input twice, lose another, and count neither as failed.
    """
    names = [str(name) for name in names]
    world = info.world_size
    out: list[Any] = [None] * len(names)
    for rank, (done, part) in enumerate(all_gather_objects((names[info.rank::world], list(mine)))):
        expected = names[rank::world]
        if done != expected:
            raise ShardMismatchError(
                f"rank {rank} of {world} worked on {len(done)} input(s), not on its shard of the {len(names)} inputs "
                f"rank {info.rank} has ({len(expected)}: {_first_difference(done, expected)}); expected every rank "
                "to shard one list, rank 0's (dynsnip.engine.distributed.rank_zero_view)")
        if len(part) != len(done):
            raise ShardMismatchError(f"rank {rank} of {world} returned {len(part)} result(s) for its {len(done)} "
                                     "input(s); expected one result per input")
        out[rank::world] = part
    return out
