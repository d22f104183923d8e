"""``torchrun`` with two CPU ranks (gloo) shards ``extract-faces`` (same folders, one manifest,
resumable) and ``predict`` (one report, identical to one process's)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from video_fixtures import carphone, two_people, write_text_as_mp4

from dynsnip.cli import main

REPO = Path(__file__).resolve().parent.parent


def torchrun_dynsnip(args: list[str]) -> subprocess.CompletedProcess:
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([torchrun, "--standalone", "--nnodes", "1", "--nproc_per_node", "2", "-m", "dynsnip", *args], capture_output=True, text=True, timeout=300, env=env)


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed not built")
def test_two_ranks_extract_what_one_process_does(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(carphone(), data / "car.mp4")
    shutil.copy(two_people(), data / "people.mp4")
    shutil.copy(carphone(), data / "car_again.mp4")
    write_text_as_mp4(data / "broken.mp4")
    (data / "videos.csv").write_text("path,label,split\ncar.mp4,real,train\npeople.mp4,fake,train\n"
                                     "broken.mp4,fake,val\ncar_again.mp4,real,val\n")
    common = ["--manifest", str(data / "videos.csv"), "--max-frames", "8", "--workers", "1", "--no-progress"]
    single = tmp_path / "single"
    assert main(["extract-faces", *common, "--out", str(single)]) == 1  # the broken one fails
    single_lines = capsys.readouterr().out.replace(str(single), "OUT").splitlines()

    sharded = tmp_path / "sharded"
    proc = torchrun_dynsnip(["extract-faces", *common, "--out", str(sharded)])
    assert proc.returncode == 1, proc.stderr[-3000:]
    lines = [line for line in proc.stdout.replace(str(sharded), "OUT").splitlines() if line.strip()]
    assert lines == single_lines  # rank 0 prints the one report, in the order of the inputs
    assert folder_bytes(sharded) == folder_bytes(single)  # same crops, same faces.json, one merged faces.csv

    # resume: a finished video is skipped, a missing one is done again
    shutil.rmtree(sharded / "people")
    proc = torchrun_dynsnip(["extract-faces", *common, "--out", str(sharded), "--overwrite"])
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert sum(line.startswith("SKIPPED") for line in proc.stdout.splitlines()) == 2
    assert sum(line.startswith("OK") for line in proc.stdout.splitlines()) == 1
    assert folder_bytes(sharded) == folder_bytes(single)


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed not built")
def test_two_ranks_predict_one_merged_report(tmp_path, capsys):
    from test_cli_predict import detector_state

    from dynsnip.hub import save_pretrained

    model = detector_state(num_classes=2, bias=(0.1, -0.1), zero_weights=False)
    checkpoint = save_pretrained(model, tmp_path / "detector", pretrained_cfg={"input_size": (3, 32, 32)})
    videos = [str(carphone()), str(two_people()), str(write_text_as_mp4(tmp_path / "broken.mp4"))]
    common = [*videos, "--checkpoint", str(checkpoint), "--snippets", "2", "--workers", "0", "--no-progress",
              "--device", "cpu"]
    assert main(["predict", *common, "--output", str(tmp_path / "single.json")]) == 1
    capsys.readouterr()
    proc = torchrun_dynsnip(["predict", *common, "--output", str(tmp_path / "sharded.json")])
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert (tmp_path / "sharded.json").read_text() == (tmp_path / "single.json").read_text()
