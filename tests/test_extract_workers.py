"""extract-faces with worker processes must not hang in torch after the fork.

The parent process starts torch's OpenMP thread pool (building the face detector does);
a process forked after that hung in its first parallel region (MTCNN in two workers),
until the workers were made to compute with one torch thread, as DataLoader workers do.
"""
import os
import subprocess
import sys
from pathlib import Path

from video_fixtures import carphone, two_people

ROOT = Path(__file__).resolve().parent.parent


def test_extract_faces_with_two_workers_finishes(tmp_path):
    videos = [carphone(), two_people()]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-m", "dynsnip", "extract-faces", *map(str, videos), "--out", str(tmp_path / "faces"),
         "--face-detector", "mtcnn", "--max-frames", "24", "--workers", "2", "--no-progress"],
        capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "2 video(s): 2 done, 0 failed" in proc.stdout
    for video in videos:
        assert any((tmp_path / "faces" / video.stem).glob("*.png")), video.stem
