"""``extract-faces --replace-stale``: the old face folder is replaced by the new one in one step
(``folder_swap.exchange_paths``, Linux's ``renameat2(RENAME_EXCHANGE)``), so a run stopped at any
point of the replacement leaves the folder complete, old or new, never missing; where the system
cannot swap, the two-rename fallback puts the old folder back when stopped between its renames."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from video_fixtures import carphone, decode_all, encode

import dynsnip.data.faces.extraction as extraction
from dynsnip.data.faces.extraction import extract_face_frames
from dynsnip.data.faces.folder_swap import exchange_paths


def box(_frame):
    return np.array([[40, 30, 120, 110, 0.9]])


def other_box(_frame):
    return np.array([[50, 40, 130, 120, 0.9]])


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("video") / "v.mp4"
    encode(path, decode_all(carphone())[:8])
    return path


def regions(folder: Path) -> list:
    return [frame["region"] for frame in json.loads((folder / "faces.json").read_text())["frames"]]


def test_exchange_paths_swaps_two_folders_or_says_it_cannot(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "from_a").write_text("a")
    (b / "from_b").write_text("b")
    swapped = exchange_paths(a, b)
    if sys.platform.startswith("linux"):
        assert swapped  # Linux >= 3.15 on ext4 / tmpfs / xfs / btrfs: what CI and users' machines have
    if swapped:
        assert (a / "from_b").is_file() and (b / "from_a").is_file()
    else:
        assert (a / "from_a").is_file() and (b / "from_b").is_file()  # nothing changed
    with pytest.raises(OSError):
        if not exchange_paths(tmp_path / "missing", a):
            raise OSError("cannot swap here")


class Stop(BaseException):
    """Stands for a Ctrl-C / SIGTERM arriving at one point of the replacement."""


@pytest.mark.parametrize("swap", ["exchange", "two renames"])
def test_a_replacement_stopped_anywhere_leaves_a_complete_folder(video, tmp_path, monkeypatch, swap):
    out = tmp_path / "v"
    extract_face_frames(video, out, face_detector=box, min_face_coverage=0)
    old = regions(out)
    if swap == "two renames":
        monkeypatch.setattr(extraction, "exchange_paths", lambda a, b: False)
    moves = []  # every rename / exchange of the replacement, stopped before or after it in turn
    real_rename, real_exchange = Path.rename, extraction.exchange_paths

    def counted(kind, function):
        def run(*args):
            moves.append(kind)
            if stop_at == (len(moves), "before"):
                raise Stop
            result = function(*args)
            if stop_at == (len(moves), "after"):
                raise Stop
            return result
        return run

    stop_at = None
    monkeypatch.setattr(Path, "rename", counted("rename", real_rename))
    monkeypatch.setattr(extraction, "exchange_paths", counted("exchange", real_exchange))
    extract_face_frames(video, out, face_detector=other_box, min_face_coverage=0, replace=True)  # count the moves
    calls = len(moves)
    assert moves == (["exchange"] if swap == "exchange" else ["exchange", "rename", "rename"])
    new = regions(out)
    assert new != old
    for n in range(1, calls + 1):
        for when in ("before", "after"):
            extract_face_frames(video, out, face_detector=box, min_face_coverage=0, replace=True)  # back to old
            moves.clear()
            stop_at = (n, when)
            with pytest.raises(Stop):
                extract_face_frames(video, out, face_detector=other_box, min_face_coverage=0, replace=True)
            stop_at = None
            assert out.is_dir(), f"stopped {when} move {n} ({moves[-1]}): the face folder is gone"
            assert regions(out) in (old, new) and len(os.listdir(out)) > 2
            assert [p.name for p in tmp_path.iterdir()] == ["v"]  # no .partial left beside it


def _killed_before_its_owner_record(video: Path, out: Path) -> None:
    """In a child process: the extraction dies (as a worker of a broken pool does) as it writes the
    folder's ``.owner`` record, before the record is there."""
    real_write_text = Path.write_text

    def dying_write_text(self, *args, **kwargs):
        if self.name == ".owner":
            os._exit(3)
        return real_write_text(self, *args, **kwargs)

    Path.write_text = dying_write_text
    extract_face_frames(video, out, face_detector=box, min_face_coverage=0)


def test_an_extraction_killed_as_it_claims_its_folder_does_not_block_the_next(video, tmp_path):
    """A ``.partial`` folder without its writer's record cannot be told from one another extraction has
    just begun, so it is refused until removed by hand. The folder is therefore claimed with its record
    in one step: a process killed while claiming leaves no ``.partial``, and the same extraction runs
    again (it failed under load: a pool's killed worker left ``car.partial`` without a record)."""
    import multiprocessing

    out = tmp_path / "faces" / "v"
    child = multiprocessing.get_context("fork").Process(target=_killed_before_its_owner_record, args=(video, out))
    child.start()
    child.join()
    assert child.exitcode == 3
    assert not (tmp_path / "faces" / "v.partial").exists()
    extract_face_frames(video, out, face_detector=box, min_face_coverage=0)  # not refused as in use
    assert regions(out) and not (out / ".owner").exists()
    assert [p.name for p in (tmp_path / "faces").iterdir() if not p.name.startswith(".")] == ["v"]


def test_a_claim_left_by_an_ended_writer_is_cleared(video, tmp_path):
    import multiprocessing
    import socket

    ended = multiprocessing.get_context("fork").Process(target=os._exit, args=(0,))
    ended.start()
    ended.join()
    stray = tmp_path / ".v.partial.claim-1-abcd"
    stray.mkdir()
    (stray / ".owner").write_text(f"{socket.gethostname()} {ended.pid}")
    running = tmp_path / ".v.partial.claim-2-abcd"
    running.mkdir()
    (running / ".owner").write_text(f"{socket.gethostname()} {os.getpid()}")  # a live writer's: kept
    extract_face_frames(video, tmp_path / "v", face_detector=box, min_face_coverage=0)
    assert not stray.exists() and running.is_dir()


def test_a_claim_left_for_a_video_with_pattern_characters_in_its_name_is_cleared(video, tmp_path):
    """A stray claim of ``[1].mp4``'s folder: the video's name is matched as it is, not as a glob pattern."""
    import multiprocessing
    import shutil
    import socket

    ended = multiprocessing.get_context("fork").Process(target=os._exit, args=(0,))
    ended.start()
    ended.join()
    stray = tmp_path / ".[1].partial.claim-1-abcd"
    stray.mkdir()
    (stray / ".owner").write_text(f"{socket.gethostname()} {ended.pid}")
    named = tmp_path / "[1].mp4"
    shutil.copy(video, named)
    extract_face_frames(named, tmp_path / "[1]", face_detector=box, min_face_coverage=0)
    assert not stray.exists() and (tmp_path / "[1]" / "faces.json").is_file()
