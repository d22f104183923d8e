"""The distributed path: ``torchrun`` with two CPU processes (gloo) and DistributedDataParallel.

Both ranks must end with identical weights, equal to what one process gets by averaging the
two ranks' gradients of each step (what DDP promises), on the batches the distributed
sampler gives each rank.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import safetensors.torch
import timm
import torch
import torch.nn.functional as F
from torch.utils.data import DistributedSampler

import dynsnip  # noqa: F401
from dynsnip.engine import Recipe
from dynsnip.engine.train import seed_everything

TINY = dict(channels=(8, 16, 32, 64), stem_width=8)
RECIPE = dict(model="dil_resnet18", pretrained=False, epochs=2, batch_size=4, lr=1e-2, num_snippets=2,
              test_num_snippets=2, img_size=16, amp=False, num_workers=0, seed=5)

WORKER = textwrap.dedent(
    """
    import sys, torch, safetensors.torch
    torch.set_num_threads(1)
    sys.path.insert(0, {tests!r})
    from test_engine_ddp import Clips, RECIPE, TINY, report
    from dynsnip.engine import Recipe, train
    from dynsnip.engine.distributed import cleanup_distributed, init_distributed

    info = init_distributed("cpu")
    result = train(Recipe(**RECIPE), Clips(), Clips(5), {out!r}, model_kwargs=TINY, device="cpu", progress=False, log=None)
    state = {{k: v.contiguous() for k, v in result.model.state_dict().items()}}
    safetensors.torch.save_file(state, {out!r} + f"/rank{{info.rank}}.safetensors")
    report({out!r}, info.rank, "world", info.world_size, "rank", info.rank)
    cleanup_distributed()
    """
)


class Clips(torch.utils.data.Dataset):
    def __init__(self, n: int = 12):
        g = torch.Generator().manual_seed(1)
        self.x = torch.randn(n, 3, 8, 16, 16, generator=g)
        self.y = (torch.arange(n) % 2).float()

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


def emulate_two_ranks(recipe: Recipe) -> dict[str, torch.Tensor]:
    """One process doing what DDP should: per step, the mean of the two ranks' gradients.

    Runs with one thread, as the workers do, so that float reductions happen in the same order
    (Adam turns last-bit differences of near-zero gradients into visible ones).
    """
    seed_everything(recipe.seed)
    model = timm.create_model("dil_resnet18", num_classes=1, **TINY)
    opt = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    data = Clips()
    per_rank = recipe.batch_size // 2
    for epoch in range(1, recipe.epochs + 1):
        orders = []
        for rank in range(2):
            sampler = DistributedSampler(data, num_replicas=2, rank=rank, shuffle=True, seed=recipe.seed)
            sampler.set_epoch(epoch)
            orders.append(list(sampler))
        model.train()
        for start in range(0, len(orders[0]), per_rank):
            grads = []
            for rank in range(2):
                idx = orders[rank][start:start + per_rank]
                x = torch.stack([data[i][0] for i in idx])
                y = torch.stack([data[i][1] for i in idx])
                model.zero_grad()
                F.binary_cross_entropy_with_logits(model(x)[:, 0], y).backward()
                grads.append([p.grad.clone() for p in model.parameters()])
            for p, g0, g1 in zip(model.parameters(), *grads):
                p.grad = g0 / 2 + g1 / 2  # DDP divides by the world size, then all-reduces a sum
            opt.step()
    return {k: v for k, v in model.named_parameters()}


def run_two_ranks(tmp_path: Path, worker: str, out: Path) -> subprocess.CompletedProcess:
    """``torchrun`` two CPU processes on ``worker`` (formatted with ``tests`` and ``out``)."""
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    script = tmp_path / "worker.py"
    script.write_text(worker.format(tests=str(Path(__file__).parent), out=str(out)))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(
        # --standalone: torchrun binds a free port itself (no window for another process to take it)
        [torchrun, "--standalone", "--nnodes", "1", "--nproc_per_node", "2", str(script)],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def report(out: str, rank: int, *words) -> None:
    """A worker's line for the test, in a file of its own: two processes printing to one pipe
    interleave their output."""
    Path(out, f"rank{rank}.txt").write_text(" ".join(map(str, words)))


def rank_reports(out: Path) -> dict[int, str]:
    """What each rank's worker wrote with ``report``."""
    return {rank: (out / f"rank{rank}.txt").read_text() for rank in (0, 1)}


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed not built")
def test_torchrun_two_cpu_processes_average_gradients(tmp_path):
    out = tmp_path / "run"
    run_two_ranks(tmp_path, WORKER, out)
    assert rank_reports(out) == {0: "world 2 rank 0", 1: "world 2 rank 1"}
    rank0 = safetensors.torch.load_file(str(out / "rank0.safetensors"))
    rank1 = safetensors.torch.load_file(str(out / "rank1.safetensors"))
    for k in rank0:  # parameters and BatchNorm statistics identical on both ranks
        assert torch.equal(rank0[k], rank1[k]), k
    expected = emulate_two_ranks(Recipe(**RECIPE))
    seed_everything(RECIPE["seed"])
    start = timm.create_model("dil_resnet18", num_classes=1, **TINY).state_dict()
    moved = 0
    for k, v in expected.items():
        assert torch.allclose(rank0[k], v, rtol=1e-4, atol=1e-5), k
        moved += not torch.allclose(start[k], v)
    assert moved > len(expected) // 2  # the weights did train
    # only rank 0 wrote the run folder, with the hub-layout model; the validation set was split over
    # the ranks and gathered: each of its 5 videos scored exactly once
    assert (out / "model" / "config.json").is_file() and (out / "checkpoint" / "state.json").is_file()
    report = json.loads((out / "val_report.json").read_text())
    assert report["overall"]["num_videos"] == 5 and sorted(v["id"] for v in report["videos"]) == list("01234")


UNREADABLE_WORKER = textwrap.dedent(
    """
    import json, sys, torch, safetensors.torch
    torch.set_num_threads(1)
    sys.path.insert(0, {tests!r})
    from test_engine_ddp import Clips, RECIPE, TINY, Unreadable, report
    from dynsnip.engine import Recipe, train
    from dynsnip.engine.distributed import cleanup_distributed, init_distributed

    info = init_distributed("cpu")
    recipe = Recipe(**dict(RECIPE, batch_size=2, epochs=1))  # one clip per rank and step
    result = train(recipe, Unreadable(Clips(6), bad=(0,)), Unreadable(Clips(5), bad=(3,)), {out!r},
                   model_kwargs=TINY, device="cpu", progress=False, log=None)
    state = {{k: v.contiguous() for k, v in result.model.state_dict().items()}}
    safetensors.torch.save_file(state, {out!r} + f"/rank{{info.rank}}.safetensors")
    report({out!r}, info.rank, "rank", info.rank, "skipped", json.dumps(result.history[0]["skipped"]))
    cleanup_distributed()
    """
)


class Unreadable(torch.utils.data.Dataset):
    """``dataset`` with the items in ``bad`` failing as missing frame folders."""

    def __init__(self, dataset, bad):
        self.dataset, self.bad = dataset, set(bad)

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, i):
        if i in self.bad:
            raise FileNotFoundError(f"faces/video_{i}: expected a folder of face frames")
        return self.dataset[i]


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed not built")
def test_torchrun_skips_unreadable_clips_on_every_rank_together(tmp_path):
    """The rank whose only clip of a step is unreadable has nothing to back-propagate: both
    ranks must skip that step (DDP would otherwise wait forever for its gradients)."""
    out = tmp_path / "run"
    run_two_ranks(tmp_path, UNREADABLE_WORKER, out)
    reports = rank_reports(out)
    for rank in (0, 1):  # both ranks know what was skipped on either
        assert reports[rank].startswith(f'rank {rank} skipped [{{"id": "0", "reason": "not_found"'), reports
    rank0 = safetensors.torch.load_file(str(out / "rank0.safetensors"))
    rank1 = safetensors.torch.load_file(str(out / "rank1.safetensors"))
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    report = json.loads((out / "val_report.json").read_text())
    assert report["num_failed"] == 1 and report["failed"][0]["id"] == "3"
    assert sorted(v["id"] for v in report["videos"]) == ["0", "1", "2", "4"]
