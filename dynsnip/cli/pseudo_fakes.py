"""``dynsnip pseudo-fakes VIDEO --out DIR``: see what ``dynsnip train --pseudo-fakes`` teaches.

The face of the video (or a folder of face crops from ``dynsnip extract-faces``) is cropped,
a pseudo-fake of it is made (:mod:`dynsnip.data.pseudo_fakes`) and written as
``DIR/pseudo_fakes.png`` (the frames of one snippet: real, pseudo-fake, mask, difference)
and ``DIR/pseudo_fakes.gif`` (real | pseudo-fake | mask over the decoded frames).
Existing files are replaced only with ``--overwrite``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .exit_codes import EXIT_OK, EXIT_SOME_FAILED, usage_error

OUTPUTS = ("pseudo_fakes.png", "pseudo_fakes.gif", "pseudo_fakes.json")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "pseudo-fakes",
        help="picture and GIF of the self-blended pseudo-fakes that `train --pseudo-fakes` makes of a video",
        description=(
            "Crop the face of VIDEO (dlib) or read a folder of face crops, make its pseudo-fake (real face blended "
            "with a transformed copy of itself inside a face-shaped mask; the blend constant over the clip, jumping "
            "from frame to frame, or both) and write DIR/pseudo_fakes.png (one snippet: real, pseudo-fake, mask, "
            "difference per frame) and DIR/pseudo_fakes.gif. See docs/pseudo_fakes.md."
        ),
    )
    p.add_argument("video", type=Path, metavar="VIDEO", help="a video file, or a folder of face crops (extract-faces)")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder (created)")
    p.add_argument("--mode", choices=("spatial", "temporal", "both"), default="both", help="pseudo-fake mode (default both)")
    p.add_argument("--magnitude", choices=("weak", "medium", "strong"), default="medium",
                   help="blend strength (default medium)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0; same seed, same pseudo-fake)")
    p.add_argument("--snippet-len", type=int, default=4, help="T: frames in the picture's snippet (default 4)")
    p.add_argument("--snippet", type=int, default=0, help="which snippet of the decoded frames the picture shows")
    p.add_argument("--size", type=int, default=160, help="face crop side in pixels, 16 to 512 (default 160)")
    p.add_argument("--max-frames", type=int, default=48, help="frames decoded from the start / read from the folder (default 48)")
    p.add_argument("--overwrite", action="store_true", help="replace existing pseudo_fakes.* files in DIR")
    p.set_defaults(func=run)
    return p


def _face_crops(source: Path, size: int, max_frames: int, snippet_len: int = 4):
    """``(crops (F, S, S, 3) uint8, fps)`` of a video (dlib, tracked, 1.3 margin) or a crop folder:
    of an extract-faces folder, the crops training cuts (its crop policy, the first sample face
    track), in whole snippets of ``snippet_len`` frames; of a folder of ready crops, its images."""
    import numpy as np
    from PIL import Image

    from ..data import VideoReader
    from ..data.datasets import frame_sequence, list_frames
    from ..data.faces.face_folder import FaceFolder

    if source.is_dir():
        folder = FaceFolder.open(source, frame_sequence(source).paths)
        if folder is not None:  # face regions and faces.json: cut as FaceFramesDataset cuts them
            usable = min(max_frames, folder.num_frames) // snippet_len * snippet_len
            if usable == 0:  # not one snippet: the caller's usage error names the frames needed
                return np.zeros((0, size, size, 3), np.uint8), 10.0
            tracks = FaceFolder.sample_tracks(source)
            images, _ = folder.clip_frames(np.arange(usable).reshape(-1, snippet_len), (size, size), "bilinear",
                                           track=tracks[0] if tracks else None)
            import json

            fps = json.loads((source / "faces.json").read_text(encoding="utf-8")).get("fps")  # the video's
            return images, float(fps) if isinstance(fps, (int, float)) and fps > 0 else 10.0
        frames = list_frames(source)[:max_frames]
        crops = []
        for path in frames:
            with Image.open(path) as image:
                crops.append(np.asarray(image.convert("RGB").resize((size, size), Image.BILINEAR)))
        return np.stack(crops), 10.0
    from ..demo.synthetic import face_footage

    footage = face_footage(source, size, max_frames=max_frames)
    with VideoReader(source) as video:
        fps = video.fps
    return footage.crops, fps


MAX_SIZE = 512  # face crop side: a picture to look at, larger than the crops the models see (224)
# the blend works on float32 (3, F, S, S) tensors: the peak memory is about this many float32 copies of the frames
# (measured on carphone, 48 frames: +2.2 GiB at --size 512, +0.5 GiB at 256, over the process's own 0.9 GiB)
WORKING_COPIES = 16
MAX_WORKING_BYTES = 8 * 2**30  # refused beyond this, before anything is decoded (instead of a MemoryError)


def _options_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the numbers of ``args``, or None (checked before anything is decoded)."""
    if args.snippet_len < 1:
        return f"--snippet-len must be at least 1 frame, got {args.snippet_len}"
    if args.max_frames < 1:
        return f"--max-frames must be at least 1 frame, got {args.max_frames}"
    if args.snippet < 0:
        return f"--snippet must be 0 or more (which snippet of the decoded frames), got {args.snippet}"
    if not 16 <= args.size <= MAX_SIZE:
        return f"--size must be a face crop side between 16 and {MAX_SIZE} pixels, got {args.size}"
    if args.seed < 0:
        return f"--seed must be a whole number >= 0, got {args.seed}"
    if args.out.exists() and not args.out.is_dir():
        return f"--out {args.out} is a file, expected a folder (created if missing)"
    needed = args.max_frames * args.size * args.size * 3 * 4 * WORKING_COPIES
    if needed > MAX_WORKING_BYTES:
        return (f"--max-frames {args.max_frames} at --size {args.size} needs about {needed / 2**30:.0f} GiB of memory; "
                f"expected at most {MAX_WORKING_BYTES / 2**30:.0f} GiB: lower --max-frames or --size")
    return None


def run(args: argparse.Namespace) -> int:
    from ..data.errors import VideoError
    from ..data.pseudo_fake_preview import preview_sheet, write_preview_gif
    from ..data.pseudo_fakes import PseudoFakeGenerator

    if problem := _options_problem(args):
        return usage_error("pseudo-fakes", problem)
    if not args.video.exists():
        return usage_error("pseudo-fakes", f"{args.video}: no such video file or folder of face crops")
    existing = [name for name in OUTPUTS if (args.out / name).exists()]
    if existing and not args.overwrite:
        return usage_error("pseudo-fakes", f"{args.out} already holds {', '.join(existing)}; "
                                           "pass --overwrite to replace them or choose another --out")
    try:
        if args.video.is_file():  # a video: decoded (a folder of crops needs no PyAV)
            from ..data._optional import require_video_decoding

            require_video_decoding()
    except ImportError as err:  # the video extra is missing: one usage error
        return usage_error("pseudo-fakes", str(err))
    try:
        crops, fps = _face_crops(args.video, args.size, args.max_frames, args.snippet_len)
    except (VideoError, OSError) as err:  # the input failed (reported with its reason), as in explain: exit 1
        reason, message = getattr(err, "reason", "unreadable"), str(getattr(err, "message", err))
        named = message if message.startswith(str(args.video)) else f"{args.video}: {message}"  # the path once
        print(f"dynsnip pseudo-fakes: {reason}: {named}", file=sys.stderr)
        return EXIT_SOME_FAILED
    start = args.snippet * args.snippet_len
    if start + args.snippet_len > len(crops):
        return usage_error("pseudo-fakes", f"snippet {args.snippet} of {args.snippet_len} frames needs "
                                           f"{start + args.snippet_len} frames; only {len(crops)} were read")
    from PIL import Image

    generator = PseudoFakeGenerator(mode=args.mode, magnitude=args.magnitude)
    fake = generator(crops, seed=args.seed, snippet_len=args.snippet_len)
    args.out.mkdir(parents=True, exist_ok=True)
    snippet = slice(start, start + args.snippet_len)
    Image.fromarray(preview_sheet(crops[snippet], fake.frames[snippet], fake.masks[snippet])).save(args.out / OUTPUTS[0])
    write_preview_gif(args.out / OUTPUTS[1], crops, fake.frames, fake.masks, fps=fps)
    (args.out / OUTPUTS[2]).write_text(json.dumps(dict(
        source=str(args.video), frames=len(crops), size=args.size, seed=args.seed, snippet=args.snippet,
        snippet_len=args.snippet_len, generator=generator.describe(),
    ), indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out / OUTPUTS[0]} (snippet {args.snippet}: real, pseudo-fake, mask, difference) and "
          f"{args.out / OUTPUTS[1]} ({len(crops)} frames); mode {args.mode}, magnitude {args.magnitude}")
    return EXIT_OK
