"""Manifests, the two training datasets, and writing face crops once (extract_face_frames)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from video_fixtures import LANDMARKS, carphone, decode_all, encode, faceless_frames, faceless_video, two_people  # noqa: F401

from dynsnip.data import (
    FaceClipLoader,
    FaceFramesDataset,
    ManifestEntry,
    NoFaceError,
    VideoDataset,
    extract_face_frames,
    frames_to_tensor,
    list_frames,
    read_frames,
    read_manifest,
    sample_snippets,
    write_manifest,
)
from dynsnip.data.errors import FaceFolderError


def test_csv_manifest_labels_splits_and_relative_paths(tmp_path):
    (tmp_path / "m.csv").write_text("path,label,split\na.mp4,real,train\nsub/b.mp4,FAKE,val\n/abs/c.mp4,1,train\n")
    entries = read_manifest(tmp_path / "m.csv")
    assert entries == [
        ManifestEntry(tmp_path / "a.mp4", 0, "train"),
        ManifestEntry(tmp_path / "sub/b.mp4", 1, "val"),
        ManifestEntry(Path("/abs/c.mp4"), 1, "train"),
    ]
    assert [e.path.name for e in read_manifest(tmp_path / "m.csv", split="train")] == ["a.mp4", "c.mp4"]


def test_json_manifest_and_bad_rows(tmp_path):
    (tmp_path / "m.json").write_text(json.dumps([{"path": "x.mp4", "label": 0}, {"path": "y.mp4", "label": "fake"}]))
    assert [(e.path.name, e.label, e.split) for e in read_manifest(tmp_path / "m.json")] == [
        ("x.mp4", 0, None), ("y.mp4", 1, None)]
    (tmp_path / "bad.csv").write_text("path,label\nx.mp4,maybe\n")
    with pytest.raises(ValueError, match=r"bad.csv, row 2: bad label 'maybe': expected 0/1 or real/fake"):
        read_manifest(tmp_path / "bad.csv")
    (tmp_path / "nolabel.csv").write_text("path,split\nx.mp4,train\n")
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['label'\]"):
        read_manifest(tmp_path / "nolabel.csv")


def test_manifest_splits_are_normalised_and_unknown_ones_refused(tmp_path):
    (tmp_path / "m.csv").write_text("path,label,split\na,real,Train\nb,fake, train\nc,real,validation\n"
                                    "d,fake,VAL \ne,real,test\nf,fake,\n")
    entries = read_manifest(tmp_path / "m.csv")
    assert [e.split for e in entries] == ["train", "train", "val", "val", "test", None]
    assert [e.path.name for e in read_manifest(tmp_path / "m.csv", split="train")] == ["a", "b"]
    assert [e.path.name for e in read_manifest(tmp_path / "m.csv", split="Validation")] == ["c", "d"]
    (tmp_path / "bad.csv").write_text("path,label,split\na,real,train\nb,fake,dev\n")
    with pytest.raises(ValueError, match=r"bad.csv, row 3: unknown split 'dev': expected one of train, val, test"):
        read_manifest(tmp_path / "bad.csv", split="train")
    with pytest.raises(ValueError, match=r"unknown split 'tst'"):
        read_manifest(tmp_path / "m.csv", split="tst")


def test_a_manifest_that_cannot_be_read_is_named_with_what_was_expected(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nosuch\.csv: no such manifest file; expected a \.csv"):
        read_manifest(tmp_path / "nosuch.csv")
    (tmp_path / "folder.csv").mkdir()
    with pytest.raises(FileNotFoundError, match="is a folder, not a manifest file"):
        read_manifest(tmp_path / "folder.csv")
    (tmp_path / "latin1.csv").write_bytes("path,label\nvidéo.mp4,real\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1\.csv: not UTF-8 text \(byte 14"):
        read_manifest(tmp_path / "latin1.csv")
    (tmp_path / "cut.json").write_text('[{"path": "a.mp4", ')
    with pytest.raises(ValueError, match=r"cut\.json: not valid JSON \(.* at line 1, column 20\); expected a list"):
        read_manifest(tmp_path / "cut.json")


def test_manifest_with_a_utf8_byte_order_mark(tmp_path):
    (tmp_path / "m.csv").write_bytes("path,label,split\na.mp4,real,train\n".encode("utf-8-sig"))
    (tmp_path / "m.json").write_bytes(json.dumps([{"path": "a.mp4", "label": 1}]).encode("utf-8-sig"))
    assert read_manifest(tmp_path / "m.csv") == [ManifestEntry(tmp_path / "a.mp4", 0, "train")]
    assert read_manifest(tmp_path / "m.json") == [ManifestEntry(tmp_path / "a.mp4", 1, None)]


def test_manifest_duplicates_and_conflicts_are_caught_up_front(tmp_path):
    from dynsnip.data import ManifestOverlapWarning

    (tmp_path / "twice.csv").write_text("path,label,split\na/../a/v9,fake,test\nb,real,test\na/v9,fake,test\n")
    with pytest.raises(ValueError, match=r"a/v9 is listed more than once in one split: row 2 .*row 4"):
        read_manifest(tmp_path / "twice.csv", split="test")
    (tmp_path / "labels.csv").write_text("path,label,split\nv1,fake,test\nv1,real,train\n")
    with pytest.raises(ValueError, match=r"v1 has two labels: row 2 .*fake.*row 3 .*real"):
        read_manifest(tmp_path / "labels.csv", split="test")
    (tmp_path / "overlap.csv").write_text("path,label,split\nv1,fake,train\nv2,real,train\nv1,fake,val\n")
    with pytest.warns(ManifestOverlapWarning, match=r"1 video\(s\) in more than one split.*v1 \(train and val\)"):
        assert [e.path.name for e in read_manifest(tmp_path / "overlap.csv", split="val")] == ["v1"]
    with pytest.raises(ValueError, match="two labels"):  # entries given directly are checked too
        FaceFramesDataset([ManifestEntry(tmp_path / "x", 0), ManifestEntry(tmp_path / "y/../x", 1)])


def test_write_manifest_round_trip_and_no_overwrite(tmp_path):
    entries = [ManifestEntry(tmp_path / "faces" / "a", 1, "train"), ManifestEntry(tmp_path / "b", 0, None)]
    path = write_manifest(entries, tmp_path / "out.csv")
    assert "faces/a,1,train" in path.read_text()  # relative to the manifest's folder
    assert read_manifest(path) == [ManifestEntry(tmp_path / "faces" / "a", 1, "train"), ManifestEntry(tmp_path / "b", 0, None)]
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        write_manifest(entries, path)


def test_video_dataset_returns_face_clips_and_labels(tmp_path):
    entries = [ManifestEntry(carphone(), 0, "train"), ManifestEntry(two_people(), 1, "val")]
    loader = FaceClipLoader(num_snippets=2, size=(48, 48), face_detector="none")
    dataset = VideoDataset(entries, loader, split="val")
    assert len(dataset) == 1
    pixels, label = dataset[0]
    assert label.item() == 1.0 and label.dtype == torch.float32
    assert torch.equal(pixels, loader(two_people()).pixels)


@pytest.fixture(scope="module")
def extracted(tmp_path_factory):
    out = tmp_path_factory.mktemp("faces") / "two_people"
    return extract_face_frames(two_people(), out, detect_every=1)


def test_extraction_writes_every_frame_its_region_and_detections(extracted):
    assert extracted.num_frames == 9 and extracted.frames_checked == 9
    assert extracted.num_detected == 9  # auto finds the faces in every frame of this clip
    frames = list_frames(extracted.out_dir)
    assert [p.name for p in frames] == [f"{i:06d}.png" for i in range(9)]
    meta = json.loads((extracted.out_dir / "faces.json").read_text())
    assert meta["num_frames"] == 9 and meta["margin"] == 1.3 and meta["face_coverage"] == 1.0
    assert sorted(meta["detections"], key=int) == [str(i) for i in range(9)]
    assert all(len(row) == 15 for rows in meta["detections"].values() for row in rows)
    region = meta["frames"][0]["region"]
    woman = LANDMARKS[("two_people_320x192_test_vd_rc", "woman")]
    assert all(region[0] <= x < region[2] and region[1] <= y < region[3] for x, y in woman)
    # each PNG is exactly that region of the decoded frame (the video's resolution by default)
    with Image.open(frames[0]) as image:
        crop = np.asarray(image)
    original = read_frames(two_people(), [0])[0]
    assert (crop == original[region[1]:region[3], region[0]:region[2]]).all()
    assert not extracted.out_dir.with_name("two_people.partial").exists()


@pytest.mark.parametrize("video, detect_every", [(two_people, 1), (carphone, 4)])
def test_training_clip_equals_prediction_clip(tmp_path, video, detect_every):
    """The crop policy is one: extract-faces + FaceFramesDataset and predict's FaceClipLoader
    give the same tensor for the same frames (carphone: a moving head, 120 frames)."""
    out = tmp_path / "faces"
    extract_face_frames(video(), out, detect_every=detect_every)
    common = dict(num_snippets=8, snippet_len=4, size=(64, 64), interpolation="bicubic")
    from_folder, _ = FaceFramesDataset([ManifestEntry(out, 0)], **common)[0]
    clip = FaceClipLoader(detect_every=detect_every, **common)(video())
    assert clip.face_found.all()
    assert torch.equal(from_folder, clip.pixels)
    if video is carphone:  # the head moves: the snippets' boxes differ, each one constant inside its snippet
        assert len({tuple(b) for b in clip.crop_boxes.tolist()}) > 1


def test_training_clip_equals_prediction_clip_with_interpolated_boxes(tmp_path):
    """k = 32 > T on carphone (120 frames, U = 8): snippets that cannot be placed on a looked-at
    frame inside their segment get boxes interpolated between the looked-at frames around them;
    the folder and predict's loader still give the same tensor."""
    out = tmp_path / "faces"
    extract_face_frames(carphone(), out, detect_every=32)
    common = dict(num_snippets=8, snippet_len=4, size=(64, 64))
    from_folder, _ = FaceFramesDataset([ManifestEntry(out, 0)], **common)[0]
    clip = FaceClipLoader(detect_every=32, **common)(carphone())
    holds = [any(int(i) % 32 == 0 for i in snippet) for snippet in clip.frame_indices]
    assert 0 < sum(holds) < 8  # both kinds of snippet are in the clip
    assert clip.frames_checked == 4  # frames 0, 32, 64, 96 decide every box
    assert clip.face_found.all()
    assert torch.equal(from_folder, clip.pixels)


@pytest.fixture(scope="module")
def face_moves_then_leaves(tmp_path_factory) -> Path:
    """64 frames: carphone's face 50 px left of its place (frames 0-19), in its place (20-31), then
    gone (a faceless picture, 32-63). U = 2 evaluation snippets: the one without it (46-49)
    borrows the box of the other (14-17, the face on the left), far from the last face before
    the faceless frames (in its place)."""
    frames = decode_all(carphone())[:32]
    frames = [np.roll(f, -50, axis=1) for f in frames[:20]] + frames[20:32] + faceless_frames(32, (176, 144))
    return encode(tmp_path_factory.mktemp("leaves") / "face_leaves.mp4", frames)


@pytest.mark.parametrize("faces", ["largest", "all"])
def test_training_clip_equals_prediction_clip_where_a_snippet_borrows_a_far_box(tmp_path, face_moves_then_leaves,
                                                                                 faces):
    """A snippet without the face borrows the box of the nearest *sampled* snippet with it, which
    may lie anywhere in the video: the stored regions hold it (extract-faces grows the regions
    of frames in faceless windows), so the folder's clip is still predict's, pixel for pixel
    (before, the box was clipped to a region built around another detection: max |diff| 3.7 on
    foreman)."""
    out = tmp_path / "faces"
    extract_face_frames(face_moves_then_leaves, out, min_face_coverage=0, faces=faces)
    common = dict(num_snippets=2, snippet_len=4, size=(32, 32), min_face_coverage=0)
    from_folder, _ = FaceFramesDataset([ManifestEntry(out, 0)], faces=faces, **common)[0]
    loader = FaceClipLoader(**common)
    if faces == "largest":
        clip = loader(face_moves_then_leaves)
        pixels, boxes, found = clip.pixels, clip.crop_boxes, clip.face_found
    else:
        tracks = loader.load_tracks(face_moves_then_leaves)
        assert list(tracks.clips) == [0]  # one face track
        clip = tracks.clips[0]
        pixels, boxes, found = clip.pixels, clip.crop_boxes, clip.face_found
    assert found.tolist() == [True, False]  # the second snippet borrowed the first one's box
    assert int(boxes[1][0]) < 20  # the face on the left
    assert torch.equal(from_folder, pixels)


def test_a_crop_outside_its_stored_region_fails_the_folder_never_cuts_another_crop(tmp_path, face_moves_then_leaves):
    """A folder whose regions do not hold a snippet's crop (written by an older extract-faces): the
    clip is not cut from the part inside the region, nor from the whole region; bad_face_folder."""
    out = tmp_path / "faces"
    extract_face_frames(face_moves_then_leaves, out, min_face_coverage=0, faces="largest")
    meta = json.loads((out / "faces.json").read_text())
    frames = decode_all(face_moves_then_leaves)
    for i in range(32, 64):  # the regions of the faceless frames around the face in its place only
        region = meta["frames"][20]["region"]
        meta["frames"][i]["region"] = region
        Image.fromarray(frames[i][region[1]:region[3], region[0]:region[2]]).save(out / f"{i:06d}.png")
    (out / "faces.json").write_text(json.dumps(meta))
    dataset = FaceFramesDataset([ManifestEntry(out, 0)], num_snippets=2, snippet_len=4, size=(32, 32),
                                faces="largest", min_face_coverage=0)
    with pytest.raises(FaceFolderError, match=r"which does not hold the crop \[.*\] of a snippet holding it, "
                                              r"borrowed from another snippet") as err:
        dataset[0]
    assert err.value.reason == "bad_face_folder"


def test_evaluation_snippets_hold_a_looked_at_frame_so_predict_detects_once_per_snippet():
    """k = 16: evaluation snippets move (inside their segments) onto a multiple of 16, and the
    detector sees one frame per snippet, as with k = T."""
    from dynsnip.data.faces.detectors import DlibFaceDetector

    seen = []
    dlib = DlibFaceDetector()

    def counting(frame):
        seen.append(frame)
        return dlib(frame)

    clip = FaceClipLoader(num_snippets=8, snippet_len=4, size=(32, 32), detect_every=16, face_detector=counting)(carphone())
    assert all(any(int(i) % 16 == 0 for i in snippet) for snippet in clip.frame_indices)
    assert len(seen) == clip.frames_checked == 8
    # with k <= T the snippets stay in the middle of their segments
    plain = FaceClipLoader(num_snippets=8, snippet_len=4, size=(32, 32), detect_every=4)(carphone())
    assert torch.equal(plain.frame_indices, sample_snippets(120, 8, 4))


def test_extraction_never_overwrites(extracted):
    before = sorted(p.stat().st_mtime_ns for p in extracted.out_dir.iterdir())
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        extract_face_frames(two_people(), extracted.out_dir)
    assert sorted(p.stat().st_mtime_ns for p in extracted.out_dir.iterdir()) == before


def test_extraction_of_a_faceless_video_leaves_nothing(tmp_path, faceless_video):
    with pytest.raises(NoFaceError, match="no face found in any of the 3 frames the detector looked at"):
        extract_face_frames(faceless_video, tmp_path / "x")
    assert list(tmp_path.iterdir()) == []


def test_face_frames_dataset_samples_snippets_from_the_folder(extracted, tmp_path):
    manifest = write_manifest([ManifestEntry(extracted.out_dir, 1, "train")], tmp_path / "faces.csv")
    dataset = FaceFramesDataset(manifest, num_snippets=2, snippet_len=4, size=(40, 40))
    pixels, label = dataset[0]
    assert label.item() == 1.0
    # 9 frames, U=2, T=4: snippets [0-3] and [4-7]; the clip is what predict's loader makes
    loader = FaceClipLoader(num_snippets=2, snippet_len=4, size=(40, 40), detect_every=1)
    assert torch.equal(pixels, loader(two_people()).pixels)


def test_face_frames_dataset_from_class_folders(extracted, tmp_path):
    root = tmp_path / "ff"
    (root / "real").mkdir(parents=True)
    (root / "fake").mkdir()
    shutil.copytree(extracted.out_dir, root / "fake" / "v1")
    shutil.copytree(extracted.out_dir, root / "real" / "v2")
    (root / "real" / ".v3.partial.claim-1-abcd").mkdir()  # left by an extract-faces killed as it claimed v3
    dataset = FaceFramesDataset.from_class_folders(root, num_snippets=1, size=(16, 16), train=True)
    assert [(e.path.name, e.label) for e in dataset.entries] == [("v2", 0), ("v1", 1)]
    assert dataset[1][0].shape == (3, 4, 16, 16)
    with pytest.raises(FileNotFoundError, match="missing class folder"):
        FaceFramesDataset.from_class_folders(root / "real")


def test_manifest_method_column_round_trips(tmp_path):
    from dynsnip.data import read_manifest
    from dynsnip.data.manifest import write_manifest

    csv_path = tmp_path / "m.csv"
    csv_path.write_text("path,label,split,method\na,real,train,\nb,fake,test,NeuralTextures\n")
    entries = read_manifest(csv_path)
    assert [(e.path.name, e.label, e.split, e.method) for e in entries] == [
        ("a", 0, "train", None), ("b", 1, "test", "NeuralTextures")]
    out = write_manifest(entries, tmp_path / "out.csv")
    assert [e.method for e in read_manifest(out)] == [None, "NeuralTextures"]


def write_numbered_frames(folder, numbers, name="{:06d}.png", size=8):
    folder.mkdir(parents=True, exist_ok=True)
    for n in numbers:
        Image.fromarray(np.full((size, size, 3), n % 256, np.uint8)).save(folder / name.format(n))


def test_frame_folder_numbering_stray_files_and_gaps(tmp_path):
    from dynsnip.data import FrameFolderError, FrameGapError, StrayFrameFileWarning, frame_sequence
    from dynsnip.engine.failures import SkipUnreadable

    folder = tmp_path / "v"
    write_numbered_frames(folder, [*range(0, 5), *range(20, 31)])  # frames 5-19 missing
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / "cover.png")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / "thumb_0001.png")
    (folder / "faces.json").write_text("{}")  # not an image: ignored silently
    with pytest.warns(StrayFrameFileWarning, match=r"ignoring 2 image file\(s\) .*cover.png, thumb_0001.png"):
        frames = frame_sequence(folder)
    assert frames.numbers == [*range(0, 5), *range(20, 31)] and frames.step == 1
    # U=2, T=4 over 16 frames: snippet 0 is positions 2-5, i.e. frames 2, 3, 4, 20: refused, not a "motion"
    dataset = FaceFramesDataset([ManifestEntry(folder, 1)], num_snippets=2, size=(8, 8))
    with pytest.warns(StrayFrameFileWarning), pytest.raises(FrameGapError, match="after frame 4 comes 20") as err:
        dataset[0]
    assert err.value.reason == "frame_gap"
    with pytest.warns(StrayFrameFileWarning):
        failed = SkipUnreadable(dataset)[0]
    assert failed.reason == "frame_gap"
    # snippets that do not cross the gap are read (U=1: positions 6-9, frames 21-24)
    with pytest.warns(StrayFrameFileWarning):
        pixels, _ = FaceFramesDataset([ManifestEntry(folder, 1)], num_snippets=1, size=(8, 8), mean=(0,) * 3,
                                      std=(1,) * 3)[0]
    assert [round(float(v) * 255) for v in pixels[0, :, 0, 0]] == [21, 22, 23, 24]
    # a constant step other than 1 (every 5th frame extracted) is a consistent numbering
    write_numbered_frames(tmp_path / "every5", range(0, 40, 5), name="frame_{:04d}.jpg")
    assert frame_sequence(tmp_path / "every5").step == 5
    # one number twice
    write_numbered_frames(tmp_path / "dup", [0, 1, 2])
    write_numbered_frames(tmp_path / "dup", [1], name="{:d}.png")
    with pytest.raises(FrameFolderError, match="are both frame 1"):
        frame_sequence(tmp_path / "dup")


def test_a_fifo_among_frames_fails_the_folder_instead_of_hanging(tmp_path):
    import os

    from dynsnip.data import FrameFolderError

    folder = tmp_path / "v"
    write_numbered_frames(folder, [0, 1, 2, 4, 5, 6, 7])
    os.mkfifo(folder / "000003.png")
    with pytest.raises(FrameFolderError, match=r"frame 3 \(000003.png\) is not a regular file") as err:
        FaceFramesDataset([ManifestEntry(folder, 0)], num_snippets=1, size=(8, 8))[0]
    assert err.value.reason == "bad_frame_folder"
