"""extract-faces decodes every frame once: regions are decided while the video streams by."""
from __future__ import annotations

import json

import numpy as np
import torch
import pytest
from PIL import Image
from video_fixtures import carphone, decode_all, encode

from dynsnip.data.faces import extraction
from dynsnip.data.faces.boxes import square_crop_box
from dynsnip.data.faces.crop_policy import snippet_face
from dynsnip.data.faces.extraction import RegionStream, context_regions, extract_face_frames


def whole_video_regions(detections, num_frames, frame_size, margin, t, k):
    """The definition of a frame's context region, computed with every detection known:
    the union of the crops of the windows of T frames holding it, plus the nearest windows
    with a face before and after it where one of its windows has none; padded."""
    windows = []
    for s in range(num_frames):
        frames = [min(f, num_frames - 1) for f in range(s, s + t)]
        face, _ = snippet_face(frames, detections, k, num_frames)  # the policy's box of a window
        windows.append(None if np.isnan(face).any() else square_crop_box(face, frame_size, margin))
    found = [s for s, w in enumerate(windows) if w is not None]
    out = []
    for i in range(num_frames):
        near = [w for w in windows[max(0, i - t + 1): i + 1] if w is not None]
        if len(near) < min(t, i + 1):
            near += [windows[s] for s in ([f for f in found if f <= i][-1:] + [f for f in found if f > i][:1])]
        near = np.array(near, dtype=float)
        out.append(extraction._pad_region(
            [near[:, 0].min(), near[:, 1].min(), near[:, 2].max(), near[:, 3].max()], frame_size))
    return np.array(out)


@pytest.mark.parametrize("k", [1, 2, 4, 8, 16])
def test_streamed_regions_equal_the_whole_video_definition(k):
    """Faces that come and go (long gaps included, at the start and the end too): the regions
    released frame by frame, as detections arrive, are those computed knowing every detection."""
    rng = np.random.default_rng(k)
    n, t, size = 61, 4, (320, 240)
    present = np.ones(n, bool)
    present[:5] = present[20:37] = present[55:] = False
    detections = {}
    for i in range(0, n, k):
        if present[i]:
            x, y, side = 100 + rng.normal(0, 3), 80 + rng.normal(0, 3), 60 + rng.normal(0, 2)
            detections[i] = np.round([[x, y, x + side, y + side, 1.0]], 2)  # faces.json precision
        else:
            detections[i] = np.zeros((0, 5))
    expected = whole_video_regions(detections, n, size, 1.3, t, k)
    assert (context_regions(detections, n, size, 1.3, t, k) == expected).all()
    stream, got = RegionStream(n, size, 1.3, t, k), {}
    for decoded in range(1, n + 1):  # frame decoded-1 has just been decoded
        if (decoded - 1) % k == 0:
            stream.add(decoded - 1, detections[decoded - 1])
        for i, region in stream.ready(until=decoded):
            assert i not in got and i < decoded
            got[i] = region
    assert sorted(got) == list(range(n))
    assert (np.array([got[i] for i in range(n)]) == expected).all()



@pytest.mark.parametrize("k, t, all_faces", [(1, 4, False), (4, 8, True), (8, 4, False), (16, 4, True)])
def test_borrowed_regions_from_the_streams_windows_are_those_computed_again(k, t, all_faces):
    """extract_face_frames hands borrowed_regions the stream's own window crops (not computed a second
    time): the grown regions are the same as computed from the detections alone, with gaps at the
    start, in the middle and at the end, and two faces in some frames."""
    rng = np.random.default_rng(100 + k)
    n, size = 57, (320, 240)
    present = np.ones(n, bool)
    present[:6] = present[21:40] = present[52:] = False
    stream = RegionStream(n, size, 1.3, t, k, all_faces=all_faces)
    for i in range(0, n, k):
        rows = []
        if present[i]:
            x, y, side = 100 + rng.normal(0, 4), 80 + rng.normal(0, 4), 60 + rng.normal(0, 3)
            rows.append([x, y, x + side, y + side, 1.0])
            if i % 3 == 0:
                rows.append([10, 20, 40 + rng.normal(0, 2), 50, 0.8])
        stream.add(i, np.round(np.array(rows).reshape(-1, 5), 2))
    regions = np.array([region for _, region in stream.ready()])
    computed = extraction.borrowed_regions(regions, [stream.detections], size, 1.3, t, k)
    assert (computed != regions).any()  # the gaps do borrow
    reused = extraction.borrowed_regions(regions, [stream.detections], size, 1.3, t, k, windows=stream.windows)
    assert (reused == computed).all()

def test_detections_must_arrive_in_order():
    stream = RegionStream(10, (100, 100), 1.3, 4, 2)
    with pytest.raises(ValueError, match="expected frame 0, got 2"):
        stream.add(2, np.zeros((0, 5)))


class CountingReader(extraction.VideoReader):
    instances: list = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        CountingReader.instances.append(self)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return encode(tmp_path_factory.mktemp("clip") / "clip.mp4", decode_all(carphone())[:30])


def folder_contents(folder):
    meta = json.loads((folder / "faces.json").read_text())
    images = {p.name: np.asarray(Image.open(p)) for p in sorted(folder.glob("*.png"))}
    return meta, images


def test_every_frame_is_decoded_once(clip, tmp_path, monkeypatch):
    CountingReader.instances = []
    monkeypatch.setattr(extraction, "VideoReader", CountingReader)
    result = extract_face_frames(clip, tmp_path / "out", face_detector="dlib")
    (reader,) = CountingReader.instances
    assert result.num_frames == 30 and len(list((tmp_path / "out").glob("*.png"))) == 30
    assert reader.frames_decoded == 30 and reader.seeks == 1  # the opening seek to frame 0 only


def test_frames_beyond_the_memory_bound_are_decoded_again_and_written_the_same(clip, tmp_path, monkeypatch):
    """With room for almost no waiting frames, the oldest are dropped and decoded a second
    time at the end: the folder is byte for byte what the unbounded run writes."""
    reference = extract_face_frames(clip, tmp_path / "ref", face_detector="dlib")
    CountingReader.instances = []
    monkeypatch.setattr(extraction, "VideoReader", CountingReader)
    monkeypatch.setattr(extraction, "MAX_BUFFERED_BYTES", 1)
    bounded = extract_face_frames(clip, tmp_path / "bounded", face_detector="dlib")
    (reader,) = CountingReader.instances
    assert reader.frames_decoded > 30  # some frames were decoded twice
    assert (bounded.num_frames, bounded.num_detected) == (reference.num_frames, reference.num_detected)
    ref_meta, ref_images = folder_contents(tmp_path / "ref")
    meta, images = folder_contents(tmp_path / "bounded")
    assert meta == ref_meta
    assert ref_images.keys() == images.keys() and all((images[n] == ref_images[n]).all() for n in images)


def test_a_detection_batch_survives_the_memory_bound(clip, tmp_path, monkeypatch):
    """A detector taking 4 looked-at frames at once (MTCNN on a GPU takes 16) with k = 8: the
    frames of a batch span 25 frames, far beyond a bound that holds almost none; the frames of
    the pending batch are kept for it, and the folder is what the unbounded run writes."""
    from dynsnip.data.faces.detectors import DlibFaceDetector

    class Batched(DlibFaceDetector):
        batch_size = 4

    reference = extract_face_frames(clip, tmp_path / "ref", face_detector=Batched(), detect_every=8)
    monkeypatch.setattr(extraction, "MAX_BUFFERED_BYTES", 1)
    bounded = extract_face_frames(clip, tmp_path / "bounded", face_detector=Batched(), detect_every=8)
    assert bounded.num_detected == reference.num_detected == 4
    assert folder_contents(tmp_path / "ref")[0] == folder_contents(tmp_path / "bounded")[0]


def test_a_faceless_video_fails_and_leaves_nothing(tmp_path):
    from video_fixtures import faceless_frames

    from dynsnip.data.errors import NoFaceError

    video = encode(tmp_path / "noface.mp4", faceless_frames(12))
    with pytest.raises(NoFaceError):
        extract_face_frames(video, tmp_path / "out", face_detector="dlib")
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()


def test_bmp_regions_are_the_png_regions(clip, tmp_path):
    """--format bmp (uncompressed, the fast writer) is lossless like PNG: same pixels, same
    faces.json, and the training dataset reads either."""
    from dynsnip.data import FaceFramesDataset
    from dynsnip.data.manifest import ManifestEntry

    extract_face_frames(clip, tmp_path / "png", face_detector="dlib")
    extract_face_frames(clip, tmp_path / "bmp", face_detector="dlib", image_format="bmp")
    bmps = sorted((tmp_path / "bmp").glob("*.bmp"))
    pngs = sorted((tmp_path / "png").glob("*.png"))
    assert [p.stem for p in bmps] == [p.stem for p in pngs] and len(bmps) == 30
    assert all((np.asarray(Image.open(b)) == np.asarray(Image.open(p))).all() for b, p in zip(bmps, pngs))
    clips = [FaceFramesDataset([ManifestEntry(tmp_path / kind, 0)], num_snippets=2, size=(32, 32), snippet_len=4,
                               train=False)[0][0] for kind in ("png", "bmp")]
    assert torch.equal(*clips)


def test_a_folder_left_by_a_dead_process_is_replaced_a_live_ones_is_not(clip, tmp_path):
    """A worker killed mid-extraction leaves ``<name>.partial``: the next run on this machine
    replaces it; one that a running process (here: this one) is writing is never touched."""
    import os
    import socket
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    partial = tmp_path / "out.partial"
    partial.mkdir()
    (partial / "000000.png").write_bytes(b"half")
    (partial / extraction.OWNER_FILE).write_text(f"{socket.gethostname()} {os.getpid()}")
    with pytest.raises(FileExistsError, match="another extraction"):
        extract_face_frames(clip, tmp_path / "out", face_detector="dlib")
    (partial / extraction.OWNER_FILE).write_text(f"{socket.gethostname()} {int(dead.stdout)}")
    result = extract_face_frames(clip, tmp_path / "out", face_detector="dlib")
    assert result.num_frames == 30 and not partial.exists()
    assert not (tmp_path / "out" / extraction.OWNER_FILE).exists()
    assert np.asarray(Image.open(tmp_path / "out" / "000000.png")).ndim == 3
