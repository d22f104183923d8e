"""Fail closed, lose nothing: a broken ``extract-faces`` folder is one reported failure with its
reason (never a traceback of the whole evaluation, never read as ready crops), a video with no
face in any sampled frame says so whatever ``--min-face-coverage``, and the no-face advice names
the detector that looked."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from video_fixtures import carphone, decode_all, encode, faceless_video, two_people  # noqa: F401 (fixture)

from dynsnip.data import FaceClipLoader, FaceFramesDataset, ManifestEntry, frame_sequence
from dynsnip.data.errors import FACE_ADVICE, FaceFolderError, LowFaceCoverageError, NoFaceError, face_advice
from dynsnip.data.faces.detectors import FACE_DETECTORS
from dynsnip.data.faces.extraction import extract_face_frames
from dynsnip.data.faces.face_folder import FaceFolder
from dynsnip.engine import evaluate
from dynsnip.engine.failures import FailedItem, SkipUnreadable


@pytest.fixture(scope="module")
def extracted(tmp_path_factory) -> Path:
    return extract_face_frames(two_people(), tmp_path_factory.mktemp("faces") / "two_people", detect_every=1).out_dir


class MeanPixel(torch.nn.Module):
    """A stand-in detector: the clip's mean pixel is its logit."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(()))

    def forward(self, x):
        return (x.mean(dim=(1, 2, 3, 4)) * self.w)[:, None]


def break_folder(extracted: Path, folder: Path, how: str) -> Path:
    """A copy of ``extracted`` at ``folder``, broken as ``how`` says."""
    shutil.copytree(extracted, folder)
    meta = folder / "faces.json"
    if how == "missing_frame":
        (folder / "000004.png").unlink()
    elif how == "truncated_json":  # an interrupted copy
        meta.write_bytes(meta.read_bytes()[:300])
    elif how == "not_json":
        meta.write_text("<html>503 Service Unavailable</html>\n")
    elif how == "empty_json":
        meta.write_text("")
    elif how == "not_a_record":
        meta.write_text("[1, 2, 3]")
    elif how == "other_policy":
        meta.write_text(json.dumps({**json.loads(meta.read_text()), "crop_policy": "snippet-box-v9"}))
    elif how == "no_regions":
        record = json.loads(meta.read_text())
        del record["frames"]
        meta.write_text(json.dumps(record))
    elif how == "json_dir":
        meta.unlink()
        meta.mkdir()
    return folder


BROKEN = {  # how -> what the message must say
    "missing_frame": ["8 frame images, faces.json lists 9", "000004.png missing", "delete the folder",
                      "extract-faces again"],
    "truncated_json": ["faces.json is not valid JSON", "(line 1, column ", "of its 300 bytes)", "truncated",
                       "--replace-stale"],
    "not_json": ["faces.json is not valid JSON", "Expecting value (line 1, column 1 of its 37 bytes)",
                 "--replace-stale"],
    "empty_json": ["faces.json is not valid JSON", "(line 1, column 1 of its 0 bytes)", "--replace-stale"],
    "not_a_record": ["holds a JSON list, not an extract-faces record", "--replace-stale"],
    "other_policy": ["crop policy 'snippet-box-v9', expected 'snippet-box-v1'", "delete the folder"],
    "no_regions": ["faces.json has no 'frames' entry", "delete the folder"],
    "json_dir": ["faces.json is not a regular file", "--replace-stale"],
}


@pytest.mark.parametrize("how", sorted(BROKEN))
def test_a_broken_face_folder_is_a_face_folder_error_naming_folder_problem_and_fix(extracted, tmp_path, how):
    folder = break_folder(extracted, tmp_path / how, how)
    with pytest.raises(FaceFolderError) as err:
        FaceFolder.open(folder, frame_sequence(folder).paths)
    assert err.value.reason == "bad_face_folder" and err.value.path == str(folder)
    for part in BROKEN[how]:
        assert part in err.value.message, (part, err.value.message)
    assert str(folder) in str(err.value)
    # the coverage and track readers of reports do not raise: reading the folder reports it
    assert FaceFolder.recorded_coverage(folder) in (None, 1.0)
    assert FaceFolder.sample_tracks(folder) in (None, [0, 1])


TAMPERED = {  # a record change -> what the message must say
    "unknown_sample_track": (lambda m: m["samples"].update(tracks=[0, 7]),
                             "names sample face tracks [7] it does not hold (tracks: [0, 1])"),
    "no_sample_track": (lambda m: m["samples"].update(tracks=[]), "names no sample face tracks"),
    "detect_every_0": (lambda m: m.update(detect_every=0), "gives detect_every 0, below 1"),
    "detect_every_text": (lambda m: m.update(detect_every="x"), "malformed record"),
}


def _nan_boxes(meta: dict) -> None:
    for rows in meta["detections"].values():
        for row in rows:
            row[0] = float("nan")


IMPOSSIBLE = {  # a value no extraction writes -> the field the message names
    "nan_boxes": (_nan_boxes, "the detection box [nan, "),
    "box_outside": (lambda m: [row.__setitem__(slice(0, 4), [900, 900, 950, 950]) for rows in m["detections"].values()
                               for row in rows], "the detection box [900.0, 900.0, 950.0, 950.0]"),
    "huge_box": (lambda m: [row.__setitem__(slice(0, 4), [0, 0, 1e9, 1e9]) for rows in m["detections"].values()
                            for row in rows], "the detection box [0.0, 0.0, 1000000000.0, 1000000000.0]"),
    "region_outside": (lambda m: [f.update(region=[500, 500, 600, 600]) for f in m["frames"]],
                       "the region [500.0, 500.0, 600.0, 600.0]"),
    "region_nan": (lambda m: m["frames"][3].update(region=[None, 0, 10, 10]), "gives frame 3 the region [nan, "),
    "frame_size_small": (lambda m: m.update(frame_size=[20, 20]), "inside its 20x20 frame_size"),
    "frame_size_zero": (lambda m: m.update(frame_size=[0, 64]), "gives frame_size [0, 64]"),
    "scale_0": (lambda m: m.update(scale=0), "gives scale 0.0"),
    "margin_negative": (lambda m: m.update(margin=-1), "gives margin -1.0"),
    "margin_nan": (lambda m: m.update(margin=float("nan")), "gives margin nan"),
}


@pytest.mark.parametrize("how", sorted(TAMPERED) + sorted(IMPOSSIBLE))
def test_a_tampered_or_impossible_record_fails_its_video_not_the_run(extracted, tmp_path, how):
    """samples naming a track the record lacks (KeyError), detect_every 0 (ValueError mid-clip), NaN face
    boxes, a region outside the frame, scale 0, a negative margin...: no extraction writes them, and they
    ended the run or were cut anyway (every snippet borrowing, the whole region cut instead of the face).
    Each fails when the folder is opened, as bad_face_folder naming the value (a VideoError: train and
    evaluate skip that video and report it), for either --faces."""
    from dynsnip.data.manifest import ManifestEntry

    folder = tmp_path / how
    shutil.copytree(extracted, folder)
    meta = json.loads((folder / "faces.json").read_text())
    change, message = {**TAMPERED, **IMPOSSIBLE}[how]
    change(meta)
    (folder / "faces.json").write_text(json.dumps(meta))
    with pytest.raises(FaceFolderError, match=re.escape(message)) as err:
        FaceFolder.open(folder, frame_sequence(folder).paths)
    assert err.value.reason == "bad_face_folder" and "delete the folder" in err.value.message
    for faces in ("all", "largest"):
        dataset = FaceFramesDataset([ManifestEntry(folder, 0)], faces=faces, num_snippets=2, size=(16, 16))
        for index in range(len(dataset)):
            with pytest.raises(FaceFolderError):
                dataset[index]


def test_frames_of_another_size_than_their_regions_fail_when_cut(extracted, tmp_path):
    """A scale the frames were not written at (or regions of another extraction): the region's
    coordinates would cut another part of the picture; bad_face_folder naming frame and sizes."""
    folder = tmp_path / "rescaled"
    shutil.copytree(extracted, folder)
    meta = json.loads((folder / "faces.json").read_text())
    meta["scale"] = 0.5
    (folder / "faces.json").write_text(json.dumps(meta))
    x0, y0, x1, y1 = meta["frames"][0]["region"]
    dataset = FaceFramesDataset([ManifestEntry(folder, 0)], faces="largest", num_snippets=2, size=(16, 16))
    with pytest.raises(FaceFolderError, match=r"region \[.*\] at scale 0\.5, a \d+x\d+ image, but 0000\d\d\.png is "
                                              r"\d+x\d+") as err:
        dataset[0]
    assert err.value.reason == "bad_face_folder"


def test_ready_crops_without_faces_json_and_old_crop_records_are_still_read_whole(extracted, tmp_path):
    """Folders of ready crops are a documented input (docs/video.md, Frame folders): no faces.json,
    or the record extract-faces wrote before the crop policy (no crop_policy entry)."""
    crops = tmp_path / "crops"
    crops.mkdir()
    for i in range(6):
        Image.fromarray(np.full((20, 20, 3), 10 * i, np.uint8)).save(crops / f"frame_{i:04d}.png")
    assert FaceFolder.open(crops, frame_sequence(crops).paths) is None
    (crops / "faces.json").write_text(json.dumps({"source": "a.mp4", "num_frames": 6, "frames": []}))
    assert FaceFolder.open(crops, frame_sequence(crops).paths) is None
    assert FaceFolder.open(extracted, frame_sequence(extracted).paths).num_frames == 9  # a good folder


@pytest.mark.parametrize("faces", ["largest", "all"])
def test_evaluate_reports_each_broken_folder_and_scores_the_good_ones(extracted, tmp_path, faces):
    """The evaluate/train route (SkipUnreadable over FaceFramesDataset): one failure per broken
    folder with its reason and message, the good folders and a folder of ready crops scored."""
    root = tmp_path / "ff"
    good = [(shutil.copytree(extracted, root / "real_good"), 0), (shutil.copytree(extracted, root / "fake_good"), 1)]
    crops = root / "real_crops"
    crops.mkdir()
    for i in range(9):
        Image.fromarray(np.full((24, 24, 3), 20 * i, np.uint8)).save(crops / f"{i:06d}.png")
    broken = {how: break_folder(extracted, root / f"fake_{how}", how)
              for how in ("missing_frame", "truncated_json", "not_json")}
    entries = [ManifestEntry(p, label) for p, label in good] + [ManifestEntry(crops, 0)]
    entries += [ManifestEntry(p, 1) for p in broken.values()]
    dataset = FaceFramesDataset(entries, num_snippets=1, snippet_len=4, size=(16, 16), faces=faces)
    result = evaluate(MeanPixel(), dataset, batch_size=3, device="cpu", progress=False)
    assert sorted(p["id"] for p in result.predictions) == sorted(str(p) for p in (root / "real_good",
                                                                                   root / "fake_good", crops))
    failures = {f["id"]: f for f in result.failures}
    assert sorted(failures) == sorted(str(p) for p in broken.values())
    assert all(f["reason"] == "bad_face_folder" for f in failures.values())
    for how, folder in broken.items():
        for part in BROKEN[how]:
            assert part in failures[str(folder)]["message"]
    assert result.report["num_failed"] == len(broken)  # one per video, however many of its items (tracks) failed
    # the same items through the wrapper training uses: failures, not exceptions
    readable = SkipUnreadable(dataset, item_id=lambda i: str(dataset.entries[i].path))
    failed = [isinstance(readable[i], FailedItem) for i in range(len(dataset))]
    assert failed == [entry.path in broken.values() for entry in dataset.entries]


# ------------------------------------------------- no face in any sampled frame, --min-face-coverage 0
@pytest.fixture(scope="module")
def face_early_only(tmp_path_factory) -> Path:
    """100 frames, carphone's face in the first 24 only: one face track (frames 0-20), while one
    evaluation snippet sits in the middle, where no frame shows it."""
    frames = decode_all(carphone())[:24]
    return encode(tmp_path_factory.mktemp("early") / "face_early.mp4", frames + [np.zeros_like(frames[0])] * 76)


@pytest.mark.parametrize("minimum", [0.0, 0.5])
def test_no_face_in_any_sampled_frame_fails_closed_without_contradicting_the_minimum(face_early_only, minimum):
    loader = FaceClipLoader(num_snippets=1, size=(32, 32), min_face_coverage=minimum)
    with pytest.raises(NoFaceError) as err:
        loader.load_tracks(face_early_only)
    message = err.value.message
    assert err.value.reason == "no_face"
    assert message.startswith("no face found in any of the 1 sampled frames the detector looked at")
    assert "track 0 (frames 0-20)" in message and "outside the sampled snippets" in message
    assert "minimum" not in message and "only 0%" not in message
    assert [(t["id"], t["face_coverage"]) for t in err.value.tracks] == [(0, 0.0)]


def test_a_fresh_folder_whose_sampled_snippets_lack_the_face_fails_as_no_face_not_a_broken_folder(
        face_early_only, tmp_path):
    """The largest face (no track): the snippet in the middle shows no face, so the crop policy has no
    box to give (not even one to borrow). It failed as bad_face_folder ("delete and re-extract": its
    [0, 0, 0, 0] box lies outside every region); it is no_face, as predict fails the video."""
    out = extract_face_frames(face_early_only, tmp_path / "early", min_face_coverage=0).out_dir
    common = dict(num_snippets=1, size=(32, 32))
    with pytest.raises(NoFaceError, match="no face found in any of the 1 sampled frames"):
        FaceClipLoader(**common)(face_early_only)  # predict's route
    dataset = FaceFramesDataset([ManifestEntry(out, 0)], faces="largest", **common)
    with pytest.raises(NoFaceError, match=r"no face in any of the 1 sampled frames the detector looked at.*"
                                          r"expected snippets showing a face") as err:
        dataset[0]
    assert err.value.reason == "no_face" and "delete" not in err.value.message
    readable = SkipUnreadable(dataset, item_id=lambda i: str(out))
    assert readable[0].reason == "no_face"  # training skips it and evaluation lists it, as no_face
    # a snippet with the face still cuts its crop from the same folder
    early = FaceFolder.open(out, frame_sequence(out).paths)
    first = np.arange(4)[None]
    assert early.cut(first, early.snippet_boxes(first), (32, 32), "bilinear").shape == (4, 32, 32, 3)


def test_no_face_with_min_face_coverage_0_says_no_face_not_a_minimum(faceless_video):  # noqa: F811
    with pytest.raises(NoFaceError) as err:
        FaceClipLoader(num_snippets=2, size=(32, 32), min_face_coverage=0)(faceless_video)
    assert err.value.message.startswith("no face found in any of the 2 sampled frames")
    assert "minimum" not in err.value.message


# ---------------------------------------------------------- the advice names the detector that looked
@pytest.mark.parametrize("name", [n for n in FACE_DETECTORS if n != "none"])
def test_face_advice_names_the_detector_used_and_blames_dlib_only_for_dlib(name):
    advice = face_advice(name)
    assert f"the face detector was {name} " in advice and "--face-detector none" in advice
    if name != "dlib":
        assert "dlib" not in advice
    else:
        assert "frontal" in advice and "--detect-upsample 1" in advice


def test_face_advice_without_a_known_detector_is_neutral():
    assert "the face detector was" not in FACE_ADVICE and FACE_ADVICE == face_advice(None)
    assert "--face-detector auto" in FACE_ADVICE and "mtcnn" in FACE_ADVICE
    custom = face_advice(lambda frame: [])
    assert custom.startswith("the face detector was <function")


@pytest.mark.parametrize("name", ["mtcnn", "blazeface"])
def test_no_face_and_low_coverage_messages_name_the_detector_that_looked(faceless_video, tmp_path, name):  # noqa: F811
    with pytest.raises(NoFaceError) as err:
        FaceClipLoader(num_snippets=2, size=(32, 32), face_detector=name)(faceless_video)
    assert f"the face detector was {name} " in err.value.message and "dlib" not in err.value.message
    with pytest.raises(NoFaceError) as err:  # extract-faces says the same
        extract_face_frames(faceless_video, tmp_path / "out", face_detector=name)
    assert f"the face detector was {name} " in err.value.message and "dlib" not in err.value.message
    low = LowFaceCoverageError("v.mp4", 0.25, 0.5, 8, detector=FaceClipLoader(face_detector=name).face_detector)
    assert f"the face detector was {name} " in low.message and "dlib" not in low.message


@pytest.mark.parametrize("damage", ["truncated", "not_an_image"])
def test_a_damaged_frame_image_fails_as_bad_face_folder_naming_the_image_and_the_fix(extracted, tmp_path, damage):
    """A frame image cut short (an interrupted copy or sync) or overwritten: bad_face_folder naming the folder,
    the image and how to rebuild it, as a missing image is; not "unreadable: OSError: image file is truncated"."""
    folder = tmp_path / damage
    shutil.copytree(extracted, folder)
    images = frame_sequence(folder).paths
    for image in images:  # every frame: whichever the snippets cut from
        data = image.read_bytes()
        image.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"<html>503</html>\n")
    dataset = FaceFramesDataset([ManifestEntry(folder, 0)], faces="largest", num_snippets=2, size=(16, 16))
    with pytest.raises(FaceFolderError) as err:
        dataset[0]
    assert err.value.reason == "bad_face_folder" and err.value.path == str(folder)
    assert re.search(r"frame image 0000\d\d\.png cannot be read", err.value.message), err.value.message
    assert "delete the folder" in err.value.message and "extract-faces again" in err.value.message
