"""Real face footage shipped inside the package (``dynsnip/assets/videos/``).

Small, permissively licensed clips of real people, for tests, examples and the demo; their
attribution is in ``dynsnip/assets/videos/README.md``.
"""
from __future__ import annotations

from pathlib import Path

VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".avi", ".webm")


def bundled_videos_dir() -> Path:
    """The folder holding the bundled clips."""
    return Path(__file__).resolve().parent.parent / "assets" / "videos"


def bundled_videos() -> list[Path]:
    """Paths of the bundled real-face clips, sorted by name.

    ``carphone_pristine.mp4`` (176x144, 120 frames, one face), ``two_people_320x192_test_vd_rc.mp4``
    (320x192, 9 frames, two faces) and ``Zhling_1280x720.mp4`` (1280x720, 19 frames, one face).
    """
    folder = bundled_videos_dir()
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)


def bundled_video(name: str) -> Path:
    """The bundled clip called ``name`` (file name, with or without extension)."""
    for path in bundled_videos():
        if name in (path.name, path.stem):
            return path
    names = ", ".join(p.name for p in bundled_videos())
    raise FileNotFoundError(f"no bundled video {name!r}; available: {names}")
