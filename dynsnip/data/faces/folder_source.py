"""Which video an ``extract-faces`` folder holds, whether it is complete, and what it is called.

A frame folder carries its label only through the manifest row that names it, so a folder
reused for the wrong video is a wrong label (the real ``real/001.mp4``'s frames listed as
the fake ``fake/001.mp4``). Three rules keep folders and videos together:

* **Source record** (``faces.json`` ``source_file``, :func:`source_record`): the video's
  absolute path, size in bytes, modification time and the SHA-256 of its first and last
  :data:`FINGERPRINT_BYTES` bytes (the container header and the end of the stream: two
  different encodings differ there; two small reads per video, nothing next to decoding
  it). A folder holds a video when the **size and the hash** match
  (:func:`folder_source_problem`); path and time are recorded for the messages and not
  compared, so a dataset copied or moved to another disk keeps its folders, while a video
  replaced at the same path (re-downloaded, re-encoded) no longer matches. A folder written
  before the record existed holds the video at its recorded ``source`` path only.
* **Complete folders only**: a folder being written is ``<name>.partial`` and holds
  :data:`OWNER_FILE` (``"<host> <pid> <start>"`` of the writer: the start time tells a reused
  process id apart); it is renamed to ``<name>`` when complete. Readers (:class:`~dynsnip.data.datasets.FaceFramesDataset`, manifests,
  ``from_class_folders``) refuse a folder whose name ends in ``.partial`` or that holds
  :data:`OWNER_FILE` (:func:`incomplete_folder_problem`).
* **Names** (:func:`output_folder_name`): a video's folder is its path (relative to the input
  folder or the manifest's) without the extension. A part that would be ``.`` or ``..``
  (videos named ``..mp4``, ``...mp4``) or end in ``.partial`` (``x.partial.mp4``, which would
  be taken for the unfinished folder of ``x.mp4``) gets a ``_`` appended, and so does any part
  already of that form followed by underscores, so no two parts get the same name and no
  output folder is ever named like a folder being written.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path, PurePosixPath
from typing import Any

PARTIAL_SUFFIX = ".partial"  # a folder being written: ``<name>.partial``, renamed to ``<name>`` when complete
OWNER_FILE = ".owner"  # in a folder being written: "<host> <pid> <start>" of its writer (extraction.process_start)
FINGERPRINT_BYTES = 256 * 1024  # hashed at each end of the video

# parts of an output name that are escaped with a trailing "_": ".", "..", "*.partial", and those
# followed by underscores (so that escaping stays one-to-one)
_RESERVED_PART = re.compile(r"(?:\.{1,2}|.*\.partial)_*", re.DOTALL)


def source_record(video: str | os.PathLike[str]) -> dict[str, Any]:
    """What identifies ``video`` for :func:`folder_source_problem` (see module docstring)."""
    path = Path(video)
    stat = path.stat()
    digest = hashlib.sha256()
    with path.open("rb") as f:
        digest.update(f.read(FINGERPRINT_BYTES))
        if stat.st_size > FINGERPRINT_BYTES:
            f.seek(max(FINGERPRINT_BYTES, stat.st_size - FINGERPRINT_BYTES))
            digest.update(f.read(FINGERPRINT_BYTES))
    return dict(path=str(path.resolve()), size=int(stat.st_size), mtime=round(stat.st_mtime, 3),
                sha256_ends=digest.hexdigest())


def _described(record: dict[str, Any]) -> str:
    digest = str(record.get("sha256_ends"))[:12]
    return f"{record.get('path')} ({record.get('size')} bytes, SHA-256 of its ends {digest})"


def folder_source_problem(folder: str | os.PathLike[str], video: str | os.PathLike[str]) -> str | None:
    """Why the existing ``folder`` does not hold the frames of ``video``, or None when it does: it
    is complete and its ``faces.json`` records this video (same size and hash of its ends; a
    folder without that record: the same path). A video deleted since its extraction is
    held by the folder that records its path."""
    folder = Path(folder)
    if problem := incomplete_folder_problem(folder):
        return problem
    try:
        meta = json.loads((folder / "faces.json").read_text())
    except (OSError, ValueError):
        return f"{folder} holds no readable faces.json, so it is not a complete extract-faces folder of any video"
    if not isinstance(meta, dict):
        return f"{folder}/faces.json is not an extract-faces record"
    recorded = meta.get("source_file")
    try:
        current = source_record(video)
    except OSError as err:
        gone = not Path(video).exists()
        if gone and _resolved(str(recorded.get("path") if isinstance(recorded, dict) else meta.get("source"))) \
                == _resolved(str(video)):
            return None  # deleted since it was extracted (to save disk): the folder is all that is left of it
        return f"{video} cannot be read to compare it with {folder} ({err})"
    if isinstance(recorded, dict):
        if recorded.get("size") == current["size"] and recorded.get("sha256_ends") == current["sha256_ends"]:
            return None
        return (f"{folder} holds the frames of {_described(recorded)}, not of {_described(current)}"
                + (": the video changed since it was extracted" if recorded.get("path") == current["path"] else ""))
    source = meta.get("source")  # written before the record existed: the path is all there is
    if source is not None and _resolved(source) == Path(current["path"]):
        return None
    return f"{folder} holds the frames of {source} (no size or hash recorded), not of {current['path']}"


def recorded_video(folder: str | os.PathLike[str]) -> Path | None:
    """The video whose frames the ``extract-faces`` ``folder`` holds, as its ``faces.json`` records
    it (``source_file``'s absolute path; a folder written before that record: ``source``, resolved),
    or None when ``folder`` holds no readable record (not a frame folder, or a broken one)."""
    try:
        meta = json.loads((Path(folder) / "faces.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict):
        return None
    recorded = meta.get("source_file")
    path = recorded.get("path") if isinstance(recorded, dict) else meta.get("source")
    return _resolved(path) if isinstance(path, str) and path else None


def _resolved(path: str) -> Path:
    try:
        return Path(path).resolve()
    except (OSError, RuntimeError):
        return Path(os.path.abspath(path))


def incomplete_folder_problem(folder: str | os.PathLike[str]) -> str | None:
    """Why ``folder`` is not a finished frame folder (an ``extract-faces`` folder being written or
    left by an interrupted run), or None."""
    folder = Path(folder)
    if folder.name.endswith(PARTIAL_SUFFIX):
        return (f"{folder} is an unfinished extract-faces folder (its name ends in {PARTIAL_SUFFIX}: being written, "
                "or left by an interrupted run); expected a complete folder: run extract-faces again for its video")
    if (folder / OWNER_FILE).exists():
        return (f"{folder} is being written by extract-faces, or was left by an interrupted run (it holds "
                f"{OWNER_FILE}); expected a complete folder: run extract-faces again for its video")
    return None


def output_folder_name(relative: str | os.PathLike[str]) -> str:
    """The output folder name (POSIX, relative) of a video at ``relative`` (relative to its input
    folder, or just its file name): the path without the video's extension, each part escaped
    (module docstring)."""
    path = PurePosixPath(Path(relative).as_posix())
    parts = list(path.parts[:-1]) + [path.stem if path.suffix else path.name]
    return "/".join(part + "_" if _RESERVED_PART.fullmatch(part) else part for part in parts)
