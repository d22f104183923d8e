"""The one crop policy: which frames are looked at, one box per snippet, fakes cropped with their source's boxes."""
from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from video_fixtures import carphone, decode_all, encode

from dynsnip.data import FaceClipLoader, VideoDataset, detection_frames, snippet_crops
from dynsnip.data.errors import NoFaceError, SourceMismatchError
from dynsnip.data.faces.extraction import extract_face_frames


def test_detection_frames_depend_on_the_frame_index_only():
    assert detection_frames([[5, 6, 7, 8], [12, 13, 14, 15], [8, 9, 10, 11]], 4) == [8, 12]
    # any 4 consecutive frames hold exactly one multiple of 4: every snippet is looked at once
    assert all(len(detection_frames([range(s, s + 4)], 4)) == 1 for s in range(50))
    # k > T: a snippet without a multiple of k is decided by the looked-at frames around it
    assert detection_frames([[5, 6, 7, 8], [9, 10, 11, 12]], 16) == [0, 16]
    assert detection_frames([[9, 10, 11, 12]], 16, num_frames=16) == [0]  # no frame 16: only the one before
    assert detection_frames([[14, 15, 16, 17]], 16, num_frames=18) == [16]


def test_snippet_crops_one_box_per_snippet_borrowed_where_missing():
    face = np.array([[40.0, 40, 80, 90, 1.0]])
    other = np.array([[100.0, 40, 120, 60, 1.0]])  # a smaller face elsewhere: never chosen over the larger
    detections = {0: np.vstack([face, other]), 2: face + [2, 0, 2, 0, 0], 4: np.zeros((0, 5)), 6: np.zeros((0, 5))}
    crops = snippet_crops(np.array([[0, 1, 2, 3], [4, 5, 6, 7]]), detections, (200, 150), 1.3, 2)
    assert crops.face_found.tolist() == [True, False]
    assert (crops.frames_checked, crops.frames_with_face, crops.coverage) == (4, 2, 0.5)
    # mean of the followed face's two boxes (41, 40, 81, 90): side 1.3 * 50 = 65 around (61, 65)
    assert crops.boxes[0].tolist() == [28, 32, 93, 97]
    assert crops.boxes[1].tolist() == crops.boxes[0].tolist()  # borrowed from the neighbour
    with pytest.raises(ValueError, match="positive integer"):
        snippet_crops(np.zeros((2, 4), int), detections, (200, 150), 1.3, 0)


def test_snippets_between_looked_at_frames_get_the_interpolated_box():
    """k = 16 > T = 4: the box of a snippet between frames 0 and 16 is the linear interpolation at
    its middle frame of the followed face; one-sided evidence is flagged as borrowed."""
    face0 = np.array([[40.0, 40, 80, 80, 1.0]])
    face16 = np.array([[56.0, 40, 96, 80, 1.0], [150.0, 100, 160, 110, 1.0]])  # moved 16 px right; a stranger
    stranger = np.array([[0.0, 100, 20, 120, 1.0]])
    detections = {0: face0, 16: face16, 32: stranger, 48: np.zeros((0, 5))}
    snippets = np.array([[6, 7, 8, 9], [14, 15, 16, 17], [26, 27, 28, 29], [40, 41, 42, 43], [50, 51, 52, 53]])
    crops = snippet_crops(snippets, detections, (200, 150), 1.0, 16, num_frames=54)
    # snippet 0: middle 7.5 -> x0 = 40 + 16 * 7.5 / 16 = 47.5; the crop is the 40 px square around it
    assert crops.boxes[0].tolist() == [48, 40, 88, 80]
    assert crops.boxes[1].tolist() == [56, 40, 96, 80]  # holds frame 16: detected there
    # 16 -> 32: the followed face is not in frame 32 (only a smaller stranger): the larger face, flagged
    assert crops.boxes[2].tolist() == [56, 40, 96, 80]
    # 32 -> 48 with no face at 48: the stranger of 32 is the only evidence: flagged
    assert crops.boxes[3].tolist() == [0, 100, 20, 120]
    # after the last looked-at frame (48, faceless) of a 54-frame video: nothing held, borrowed from snippet 3
    assert crops.boxes[4].tolist() == [0, 100, 20, 120]
    assert crops.face_found.tolist() == [True, True, False, False, False]
    assert (crops.frames_checked, crops.frames_with_face) == (4, 3)
    # past the last looked-at frame a detected face is held, and counts as found
    held = snippet_crops(np.array([[18, 19, 20, 21]]), {16: face0}, (200, 150), 1.0, 16, num_frames=22)
    assert held.face_found.tolist() == [True] and held.boxes[0].tolist() == [40, 40, 80, 80]
    # only faceless looked-at frames: no box anywhere (the caller's "no face" error)
    none = snippet_crops(np.array([[5, 6, 7, 8]]), {0: np.zeros((0, 5)), 16: np.zeros((0, 5))}, (200, 150), 1.0, 16)
    assert none.frames_with_face == 0 and not none.face_found.any()


def test_with_k_up_to_t_the_policy_is_unchanged():
    """k <= T: every snippet holds a looked-at frame; interpolation never runs, num_frames plays no part."""
    rng = np.random.default_rng(0)
    detections = {i: np.array([[40.0 + rng.normal(), 40, 80 + rng.normal(), 80, 1.0]]) for i in range(0, 64, 4)}
    snippets = np.array([[s + t for t in range(4)] for s in (1, 9, 22, 37, 59)])
    a = snippet_crops(snippets, detections, (200, 150), 1.3, 4)
    b = snippet_crops(snippets, detections, (200, 150), 1.3, 4, num_frames=63)
    assert a.boxes.tolist() == b.boxes.tolist() and a.face_found.all()


def test_a_score_never_picks_the_face():
    """A high-scoring small box (a framed photo on the wall) loses to the larger face."""
    face = [40.0, 40, 90, 100, 0.80]
    photo = [150.0, 10, 170, 35, 0.99]
    crops = snippet_crops(np.array([[0, 1, 2, 3]]), {0: np.array([photo, face])}, (200, 150), 1.0, 4)
    x0, y0, x1, y1 = crops.boxes[0]
    assert x0 <= 40 and x1 >= 90 and y1 >= 100


@pytest.fixture(scope="module")
def real_and_fake(tmp_path_factory):
    """The carphone clip, and a "fake" of it whose face is painted over in every frame (no
    detector finds a face there; its source's boxes still place the crop on the face region)."""
    folder = tmp_path_factory.mktemp("pairs")
    frames = decode_all(carphone())[:24]
    real = encode(folder / "real.mp4", frames)
    painted = []
    for frame in frames:
        frame = frame.copy()
        frame[20:110, 40:130] = 128
        painted.append(frame)
    return real, encode(folder / "fake.mp4", painted)


def test_fake_is_cropped_with_its_sources_boxes(real_and_fake):
    real, fake = real_and_fake
    loader = FaceClipLoader(num_snippets=2, size=(32, 32), detect_every=4)
    with pytest.raises(NoFaceError):
        loader(fake)  # its own face is gone
    from_source = loader(fake, boxes_from=real)
    assert torch.equal(from_source.crop_boxes, loader(real).crop_boxes)
    # VideoDataset does it for an entry with a `source` column (the benchmark manifests')
    entry = SimpleNamespace(path=fake, label=1, split=None, method=None, source=real)
    pixels, label = VideoDataset([entry], loader)[0]
    assert torch.equal(pixels, from_source.pixels) and label.item() == 1.0
    # k > T: the source's looked-at frames around unaligned snippets crop the fake too
    wide = FaceClipLoader(num_snippets=2, size=(32, 32), detect_every=16, train=True)
    g = torch.Generator().manual_seed(3)
    assert torch.equal(wide(fake, generator=g, boxes_from=real).crop_boxes,
                       wide(real, generator=torch.Generator().manual_seed(3)).crop_boxes)
    # without a detector the source plays no part: whole frames
    whole = FaceClipLoader(num_snippets=2, size=(32, 32), face_detector="none")(fake, boxes_from=real)
    assert whole.crop_boxes.tolist() == [[0, 0, 176, 144]] * 2


def test_extraction_of_a_fake_uses_the_extracted_source(real_and_fake, tmp_path):
    real, fake = real_and_fake
    real_out = tmp_path / "real"
    extract_face_frames(real, real_out)
    with pytest.raises(NoFaceError):
        extract_face_frames(fake, tmp_path / "fake_alone")
    fake_out = tmp_path / "fake"
    extract_face_frames(fake, fake_out, boxes_from=real_out)
    real_meta = json.loads((real_out / "faces.json").read_text())
    fake_meta = json.loads((fake_out / "faces.json").read_text())
    assert fake_meta["detections"] == real_meta["detections"]
    assert [f["region"] for f in fake_meta["frames"]] == [f["region"] for f in real_meta["frames"]]
    assert fake_meta["boxes_from"] == str(real_out)
    # a video source (not extracted yet) gives the same boxes
    extract_face_frames(fake, tmp_path / "fake2", boxes_from=real)
    assert json.loads((tmp_path / "fake2" / "faces.json").read_text())["detections"] == real_meta["detections"]


def test_a_fake_extracted_with_max_frames_keeps_only_the_written_frames_of_its_sources_tracks(real_and_fake, tmp_path):
    """The source's folder covers its whole video; the fake written with --max-frames holds fewer
    frames, and its faces.json must list tracks within them, or every clip of it fails to load."""
    from dynsnip.data import FaceFramesDataset
    from dynsnip.data.faces.face_folder import FaceFolder
    from dynsnip.data.manifest import ManifestEntry

    real, fake = real_and_fake
    real_out = tmp_path / "real"
    extract_face_frames(real, real_out)
    assert max(max(t["frames"]) for t in json.loads((real_out / "faces.json").read_text())["tracks"]) >= 8
    fake_out = tmp_path / "fake"
    extract_face_frames(fake, fake_out, boxes_from=real_out, max_frames=6)
    meta = json.loads((fake_out / "faces.json").read_text())
    assert meta["num_frames"] == 6 and meta["tracks"]
    assert all(frame < 6 for track in meta["tracks"] for frame in track["frames"])
    folder = FaceFolder(fake_out, sorted(fake_out.glob("*.png")))
    assert [t.id for t in folder.tracks] == [t["id"] for t in meta["tracks"]]
    pixels, _ = FaceFramesDataset([ManifestEntry(fake_out, 1)], num_snippets=1, snippet_len=4, size=(32, 32),
                                  faces="all")[0]
    assert pixels.shape[1] == 4


def test_a_source_shorter_than_the_fake_is_a_source_mismatch_on_every_route(real_and_fake, tmp_path):
    """A source with fewer frames than the fake: the fake's later frames have no boxes of it. predict's
    loader (one face and tracks) and extract-faces (from the video or its folder) all fail the pair as
    source_mismatch naming both counts; none crops them with a frozen box or scores them."""
    real, fake = real_and_fake
    short = encode(tmp_path / "short.mp4", decode_all(real)[:12])
    short_out = tmp_path / "short"
    extract_face_frames(short, short_out)
    loader = FaceClipLoader(num_snippets=2, size=(32, 32), detect_every=4)
    expected = "has 12 frames, fewer than the 24 frames of the fake"
    with pytest.raises(SourceMismatchError, match=expected):
        loader(fake, boxes_from=short)
    with pytest.raises(SourceMismatchError, match=expected):
        loader.load_tracks(fake, boxes_from=short)
    for source in (short, short_out):
        with pytest.raises(SourceMismatchError, match=expected):
            extract_face_frames(fake, tmp_path / "fake", boxes_from=source)
        assert not (tmp_path / "fake").exists()
    # the fake's first 12 frames (--max-frames) have the source's boxes: extracted
    assert extract_face_frames(fake, tmp_path / "fake12", boxes_from=short_out, max_frames=12).num_frames == 12


def test_a_source_of_another_size_is_refused(real_and_fake, tmp_path):
    from video_fixtures import two_people

    _, fake = real_and_fake
    with pytest.raises(SourceMismatchError, match="expected the same frame size"):
        FaceClipLoader(num_snippets=2, size=(32, 32))(fake, boxes_from=two_people())


@pytest.mark.parametrize("faces", ["largest", "all"])
def test_a_source_of_another_size_or_unreadable_is_refused_by_both_passes(real_and_fake, tmp_path, faces):
    """The single-face pass (source frames) and the track pass (source detections) refuse a source
    of another frame size, and report an unreadable one as a source mismatch, not a raw error."""
    from video_fixtures import two_people

    _, fake = real_and_fake
    loader = FaceClipLoader(num_snippets=2, size=(32, 32))
    load = loader if faces == "largest" else loader.load_tracks
    with pytest.raises(SourceMismatchError, match="expected the same frame size"):
        load(fake, boxes_from=two_people())
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all" * 64)
    with pytest.raises(SourceMismatchError, match="its source video cannot be read"):
        load(fake, boxes_from=broken)


def test_failures_are_counted_by_reason_for_train_and_evaluate_logs():
    from dynsnip.engine.failures import FailedItem, count_reasons, describe_failures

    failures = [FailedItem(0, "a", "low_face_coverage", "face found in only 25% ..."),
                FailedItem(1, "b", "corrupt", "..."), FailedItem(2, "c", "low_face_coverage", "...")]
    assert count_reasons(failures) == {"low_face_coverage": 2, "corrupt": 1}
    assert describe_failures(failures).splitlines()[-1] == "  by reason: low_face_coverage 2, corrupt 1"


def test_extract_faces_takes_the_sources_folder_once_it_exists(tmp_path):
    """`extract-faces --manifest` with a `source` column: the real video's output folder once it is
    extracted and kept in this run (it holds that video, made with the settings asked), else the
    real video itself."""
    from argparse import Namespace

    from dynsnip.cli.extract_faces import _boxes_from

    real, fake = tmp_path / "real.mp4", tmp_path / "fake.mp4"
    args = Namespace(out=tmp_path / "faces")
    claimed = {"real": real, "fake": fake}
    entry = SimpleNamespace(path=fake, label=1, split=None, method=None, source=real)
    assert _boxes_from(entry, args, claimed, set()) == {"boxes_from": real}
    (args.out / "real").mkdir(parents=True)
    (args.out / "real" / "faces.json").write_text(json.dumps({"source": str(real)}))
    # a folder not kept in this run (another video's, stale, failed): not its boxes
    assert _boxes_from(entry, args, claimed, set()) == {"boxes_from": real}
    assert _boxes_from(entry, args, claimed, {args.out / "real"}) == {"boxes_from": args.out / "real"}
    kept = {args.out / "real"}
    assert _boxes_from(SimpleNamespace(path=real, label=0, split=None, method=None), args, claimed, kept) == {}
    assert _boxes_from(None, args, claimed, kept) == {}


def test_detect_device_is_the_ranks_gpu_under_torchrun(monkeypatch):
    from dynsnip.cli.face_options import detect_device

    assert detect_device("cuda") == "cuda" and detect_device("cpu") == "cpu"
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert detect_device("cuda") == "cuda:3" and detect_device("cuda:1") == "cuda:1"


def test_evaluate_reports_the_face_coverage_of_extracted_folders(real_and_fake, tmp_path):
    """A report over extract-faces folders says, per video, how much of it showed a face
    (as recorded in faces.json), and sums it up."""
    import timm

    from dynsnip.data import FaceFramesDataset
    from dynsnip.data.manifest import ManifestEntry
    from dynsnip.engine import evaluate

    real, fake = real_and_fake
    real_out, fake_out = tmp_path / "real", tmp_path / "fake"
    extract_face_frames(real, real_out, scale=0.5)
    extract_face_frames(fake, fake_out, boxes_from=real_out, scale=0.5)
    recorded = {str(f): json.loads((f / "faces.json").read_text())["face_coverage"] for f in (real_out, fake_out)}
    dataset = FaceFramesDataset([ManifestEntry(real_out, 0), ManifestEntry(fake_out, 1)], num_snippets=2,
                                size=(16, 16), snippet_len=4)
    model = timm.create_model("dil_resnet18", num_classes=1, channels=[8, 16, 32, 64], stem_width=8)
    result = evaluate(model, dataset, batch_size=2, device="cpu", progress=False)
    assert {p["id"]: p["face_coverage"] for p in result.predictions} == recorded
    summary = result.report["face_coverage"]
    assert summary["videos"] == 2 and summary["lowest"] == min(recorded.values())
    assert summary["mean"] == pytest.approx(sum(recorded.values()) / 2)
