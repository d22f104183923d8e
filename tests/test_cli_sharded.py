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
    # and each rank says what it did as it goes, on stderr: the report waits for the slowest rank
    progress = [line for line in proc.stderr.splitlines() if line.startswith("dynsnip extract-faces: rank ")]
    assert sorted(line.split(": ")[1] for line in progress) == ["rank 0/2", "rank 0/2", "rank 1/2", "rank 1/2"]
    assert sum(": FAILED " in line and "broken.mp4" in line for line in progress) == 1, progress
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


def test_gather_shards_refuses_parts_that_are_not_the_ranks_shards(monkeypatch):
    """A rank that scored another list (it found a video the others did not) or lost a result: merged, the
    report would list a video twice, miss another and say "0 failed". A ShardMismatchError names the rank."""
    from dynsnip.engine import distributed
    from dynsnip.engine.distributed import DistInfo, ShardMismatchError, gather_shards

    names, me = ["a.mp4", "b.mp4", "c.mp4"], DistInfo(rank=0, world_size=2)

    def rank_1_sends(done, results):
        monkeypatch.setattr(distributed, "all_gather_objects", lambda mine: [mine, (done, results)])

    rank_1_sends(["b.mp4"], ["B"])
    assert gather_shards(["A", "C"], names, me) == ["A", "B", "C"]
    rank_1_sends(["b.mp4", "d.mp4"], ["B", "D"])  # rank 1 saw a fourth video
    with pytest.raises(ShardMismatchError, match=r"rank 1 of 2 worked on 2 input\(s\), not on its shard of the 3 "
                                                 r"inputs rank 0 has \(1: it has d.mp4 beyond them\)"):
        gather_shards(["A", "C"], names, me)
    rank_1_sends(["c.mp4"], ["C"])  # rank 1 saw a list without b.mp4
    with pytest.raises(ShardMismatchError, match=r"its input 0 is c.mp4, expected b.mp4"):
        gather_shards(["A", "C"], names, me)
    rank_1_sends(["b.mp4"], [])
    with pytest.raises(ShardMismatchError, match=r"rank 1 of 2 returned 0 result\(s\) for its 1 input\(s\)"):
        gather_shards(["A", "C"], names, me)
    with pytest.raises(ShardMismatchError, match=r"rank 0 of 2 returned 1 result\(s\) for its 2 input\(s\)"):
        gather_shards(["A"], names, me)


def test_predict_ranks_shard_rank_0s_list_of_videos(tmp_path, monkeypatch):
    """Each rank finds the videos itself; if it sees another list than rank 0 (a folder still being filled),
    it still scores its shard of rank 0's list, so the merged report has each video once."""
    import dynsnip.cli.predict as predict
    from test_cli_predict import detector_state

    from dynsnip.engine import distributed
    from dynsnip.hub import save_pretrained

    checkpoint = save_pretrained(detector_state(num_classes=2), tmp_path / "detector",
                                 pretrained_cfg={"input_size": (3, 32, 32)})
    folder = tmp_path / "videos"
    folder.mkdir()
    for name in ("a", "b", "c", "late"):  # late.mp4 arrived after rank 0 listed the folder
        shutil.copy(carphone(), folder / f"{name}.mp4")
    rank_0_sees = [folder / "a.mp4", folder / "b.mp4", folder / "c.mp4"]
    scored: list[list[Path]] = []

    def fake_predict_videos(model, shard, **kwargs):
        scored.append(list(shard))
        return [dict(path=str(p), status="ok") for p in shard]

    monkeypatch.setattr(predict, "predict_videos", fake_predict_videos)
    monkeypatch.setattr(distributed, "join_torchrun", lambda device: distributed.DistInfo(rank=1, world_size=2))
    monkeypatch.setattr(distributed, "broadcast_object", lambda obj, src=0: list(rank_0_sees))
    monkeypatch.setattr(distributed, "all_gather_objects",
                        lambda mine: [([str(rank_0_sees[0]), str(rank_0_sees[2])], [dict(status="ok")] * 2), mine])
    assert main(["predict", str(folder), "--checkpoint", str(checkpoint), "--workers", "0", "--no-progress",
                 "--device", "cpu"]) == 0
    assert scored == [[folder / "b.mp4"]]  # rank 1's shard of rank 0's three videos, not of its own four


@pytest.mark.skipif(not torch.distributed.is_available() or sys.platform == "win32", reason="torch.distributed, signals")
def test_ctrl_c_under_torchrun_keeps_each_ranks_finished_videos(tmp_path):
    """Ctrl-C (SIGINT to the whole process group, as a terminal sends it) while rank 1 scores and rank 0,
    done, waits for it: each rank writes the videos it finished to its own report file, marked
    interrupted, without a traceback; no merged report claims to be complete."""
    import json
    import signal
    import time

    from test_cli_predict import detector_state

    from dynsnip.hub import save_pretrained

    checkpoint = save_pretrained(detector_state(num_classes=2, bias=(0.1, -0.1), zero_weights=False),
                                 tmp_path / "detector", pretrained_cfg={"input_size": (3, 32, 32)})
    videos = tmp_path / "videos"
    videos.mkdir()
    for i in range(6):
        shutil.copy(carphone(), videos / f"{i}.mp4")
    marks = tmp_path / "marks"
    marks.mkdir()
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    tests = Path(__file__).resolve().parent
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(REPO), str(tests), os.environ.get("PYTHONPATH", "")]))
    out = tmp_path / "report.json"
    proc = subprocess.Popen(
        [torchrun, "--standalone", "--nnodes", "1", "--nproc_per_node", "2", str(tests / "predict_stopper.py"),
         str(marks), "sleep-rank1:2", "predict", str(videos), "--checkpoint", str(checkpoint), "--snippets", "2",
         "--workers", "0", "--face-detector", "none", "--no-progress", "--device", "cpu", "--output", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while not ((marks / "rank0_waiting").exists() and (marks / "rank1_sleeping").exists()):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-3000:]
            time.sleep(0.5)
        os.killpg(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert not out.exists()  # no report of the whole run: it was not finished
    shards = {rank: json.loads((tmp_path / f"report.rank{rank}-of-2.json").read_text()) for rank in (0, 1)}
    assert [Path(v["path"]).name for v in shards[0]["videos"]] == ["0.mp4", "2.mp4", "4.mp4"]  # all of its shard
    assert shards[0]["not_scored"] == [] and shards[0]["interrupted"] is True
    assert [Path(v["path"]).name for v in shards[1]["videos"]] == ["1.mp4"]
    assert [Path(p).name for p in shards[1]["not_scored"]] == ["3.mp4", "5.mp4"] and shards[1]["interrupted"] is True
    for rank in (0, 1):
        assert f"rank {rank} of 2 interrupted (Ctrl-C)" in stderr, stderr[-3000:]
        assert (shards[rank]["rank"], shards[rank]["world_size"], shards[rank]["videos_of_all_ranks"]) == (rank, 2, 6)
    assert "KeyboardInterrupt" not in stderr and "Fatal Python error" not in stderr, stderr[-3000:]


def test_sharded_commands_wait_days_for_the_slowest_rank_unless_told(monkeypatch, tmp_path, capsys):
    """The ranks of predict / extract-faces meet when the slowest has finished its shard: under gloo's
    30-minute default a rank done 30 minutes earlier crashed the run. join_torchrun gives the process
    group DYNSNIP_TORCHRUN_TIMEOUT_S seconds (default 7 days); a bad value is an error naming it."""
    from dynsnip.engine import distributed

    joined = []
    monkeypatch.setattr(distributed, "init_distributed", lambda device, timeout_s=1800: joined.append(timeout_s))
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("DYNSNIP_TORCHRUN_TIMEOUT_S", raising=False)
    distributed.join_torchrun("cpu")
    monkeypatch.setenv("DYNSNIP_TORCHRUN_TIMEOUT_S", "90")
    distributed.join_torchrun("cpu")
    assert joined == [7 * 24 * 3600, 90]
    for bad in ("0", "-5", "soon", "inf"):
        monkeypatch.setenv("DYNSNIP_TORCHRUN_TIMEOUT_S", bad)
        with pytest.raises(ValueError, match=f"DYNSNIP_TORCHRUN_TIMEOUT_S='{bad}': expected a positive number of seconds"):
            distributed.join_torchrun("cpu")
    from test_cli_predict import detector_state

    from dynsnip.hub import save_pretrained

    checkpoint = save_pretrained(detector_state(), tmp_path / "detector", pretrained_cfg={"input_size": (3, 32, 32)})
    capsys.readouterr()
    for command in (["predict", "--checkpoint", str(checkpoint)], ["extract-faces", "--out", str(tmp_path / "faces")]):
        assert main([*command, str(carphone()), "--workers", "1", "--face-detector", "none", "--no-progress"]) == 2
        assert "DYNSNIP_TORCHRUN_TIMEOUT_S='inf': expected a positive number" in capsys.readouterr().err  # no traceback
