"""Face tracks: every face of a video followed under a stable id, scored, reported; a fake's swapped face found.

Real footage: the bundled two-people clip, and clips composited from the bundled carphone
clip (two faces side by side; a face in a picture on the wall; a face seen for two frames; a
person leaving and coming back).
"""
from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from PIL import Image
from video_fixtures import LANDMARKS, carphone, decode_all, encode, faceless_frames, two_people

import dynsnip  # noqa: F401  (registers dil_*)
from dynsnip.cli import main
from dynsnip.data import FaceClipLoader, FaceFramesDataset, ManifestEntry, extract_face_frames
from dynsnip.data.errors import LowFaceCoverageError, NoFaceError
from dynsnip.data.faces import tracks as T
from dynsnip.data.faces.tracks import link_tracks
from dynsnip.scoring import predict_videos, score_face_clip


def rows(*boxes):
    return np.array([[*b, 1.0] for b in boxes], dtype=np.float64).reshape(-1, 5)


NONE = np.zeros((0, 5))


# ------------------------------------------------------------------------------ linking rules
def test_linking_by_overlap_and_position_with_stable_ids():
    """Two faces; ids by appearance, largest first; a face that jumps 60% of its side between two
    looked-at frames (IoU < 0.3) is still linked by position; a third face appearing later gets
    the next id."""
    big, small, moved = [100, 50, 160, 110], [20, 20, 60, 60], [136, 50, 196, 110]
    detections = {0: rows(small, big), 4: rows(big, small), 8: rows(moved, small),
                  12: rows(small, moved, [220, 20, 260, 60]), 16: rows([220, 20, 260, 60], small)}
    tracks = link_tracks(detections)
    assert [t.id for t in tracks] == [0, 1, 2]
    assert tracks[0].frames == [0, 4, 8, 12] and tracks[0].rows[0, 0] == 100  # the larger face of frame 0
    assert tracks[1].frames == [0, 4, 8, 12, 16] and (tracks[1].rows[:, :4] == small).all()
    assert tracks[2].frames == [12, 16]
    # the jump of frame 8 (36 px of a 60 px face) has IoU < 0.3 but continues the track
    from dynsnip.data.faces.boxes import box_iou

    assert box_iou(np.array(big, float), np.array([moved], float))[0] < T.TRACK_MIN_IOU
    assert [t.status for t in tracks] == ["kept", "kept", "short"]  # track 2: 2 detections < 3


def test_a_face_seen_on_two_looked_at_frames_is_dropped_as_short():
    face, flash = [40, 40, 90, 90], [150, 30, 190, 70]
    detections = {i: rows(face) for i in range(0, 80, 4)}
    detections[40] = rows(face, flash)
    detections[44] = rows(face, flash)
    tracks = link_tracks(detections)
    assert [(t.id, t.status, len(t.frames)) for t in tracks] == [(0, "kept", 20), (1, "short", 2)]
    # a video with only 2 looked-at frames: a face on both is not short
    assert [t.status for t in link_tracks({0: rows(face), 4: rows(face)})] == ["kept"]


@pytest.mark.parametrize("gap, same", [(T.TRACK_MAX_GAP_FRAMES // 4 * 4, True), (T.TRACK_MAX_GAP_FRAMES // 4 * 4 + 4, False)])
def test_a_person_leaving_and_coming_back(gap, same):
    """Back within TRACK_MAX_GAP_FRAMES frames: the same track (the crop policy borrows boxes for the
    snippets in between); later: a new track, judged on its own."""
    face = [40, 40, 90, 90]
    detections = {i: rows(face) if i <= 20 or i >= 20 + gap else NONE for i in range(0, 20 + gap + 40, 4)}
    tracks = link_tracks(detections)
    assert len(tracks) == (1 if same else 2)
    assert all(t.kept for t in tracks)


def test_a_face_that_never_moves_is_static_and_needs_time_and_thumbnails():
    face = [40, 40, 90, 90]
    still = np.full((1, T.SIGNATURE_SIZE ** 2), 100, np.float32)
    detections = {i: rows(face) for i in range(0, 80, 4)}
    assert link_tracks(detections, {i: still for i in detections})[0].status == "static"
    # the pixels change (a real face), or no thumbnails: kept
    rng = np.random.default_rng(0)
    moving = {i: still + rng.normal(0, 8, still.shape).astype(np.float32) for i in detections}
    assert link_tracks(detections, moving)[0].status == "kept"
    assert link_tracks(detections)[0].status == "kept"
    # still, but seen for less than STATIC_MIN_FRAMES: not judged
    short = {i: rows(face) for i in range(0, T.STATIC_MIN_FRAMES, 4)}
    assert link_tracks(short, {i: still for i in short})[0].status == "kept"


def _whole_frame_signature(frame: np.ndarray, box) -> np.ndarray:
    """The static rule's thumbnail as first written: the whole frame turned grey, then the box resampled."""
    grey = Image.fromarray(frame).convert("L")
    return np.asarray(grey.resize((T.SIGNATURE_SIZE,) * 2, Image.BOX, box=box), np.float32).ravel()


def test_face_signatures_turn_only_the_box_grey_and_match_the_whole_frame_thumbnail():
    rng = np.random.default_rng(3)
    frame = rng.integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
    frame[300:700, 800:1200] = np.linspace(20, 230, 400, dtype=np.uint8)[:, None, None]  # a shaded face region
    rows = np.array([[800.4, 299.6, 1200.2, 700.0], [-40, -10, 150, 210], [1850, 1000, 2000, 1200], [5, 5, 6, 6]])
    got = T.face_signatures(frame, np.c_[rows, np.ones((len(rows), 11))])
    for n, row in enumerate(rows):  # the clipped, rounded box of the whole grey frame: within one grey level
        x0, y0 = min(max(round(row[0]), 0), 1919), min(max(round(row[1]), 0), 1079)
        box = (x0, y0, max(min(round(row[2]), 1920), x0 + 1), max(min(round(row[3]), 1080), y0 + 1))
        assert np.abs(got[n] - _whole_frame_signature(frame, box)).max() <= 1.0, n
    # another picture in the box gives another signature (not a constant)
    moved = frame.copy()
    moved[300:700, 800:1200] = moved[300:700, 800:1200][::-1]
    assert np.abs(T.face_signatures(moved, rows[:1]) - got[:1]).mean() > T.STATIC_MAX_CHANGE
    assert T.face_signatures(frame, np.zeros((0, 15))).shape == (0, T.SIGNATURE_SIZE ** 2)


def test_same_picture_is_pearson_r_and_flatness_as_defined():
    from dynsnip.data.faces.face_shown import MIN_CONTRAST, MIN_CORRELATION, same_picture

    def by_definition(a, b):
        a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
        flat_a, flat_b = a.std() < MIN_CONTRAST, b.std() < MIN_CONTRAST
        if flat_a or flat_b:
            return bool(flat_a and flat_b and abs(a.mean() - b.mean()) < MIN_CONTRAST)
        return bool(np.corrcoef(a, b)[0, 1] >= MIN_CORRELATION)

    rng = np.random.default_rng(4)
    agree, kinds = 0, set()
    for _ in range(3000):
        a = rng.uniform(0, 255, (16, 16)).astype(np.float32)
        kind = int(rng.integers(0, 3))
        if kind == 0:  # correlated to any degree, either sign
            b = a * rng.uniform(-1, 1) + rng.normal(0, rng.uniform(1, 200), a.shape)
        else:  # near-flat pictures (black frames), one or both
            a = np.full((16, 16), rng.uniform(0, 255)) + rng.normal(0, rng.uniform(0, 4), (16, 16))
            b = (a if kind == 1 else rng.uniform(0, 255, (16, 16))) + rng.normal(0, rng.uniform(0, 4), a.shape) + rng.uniform(-3, 3)
        a, b = a.astype(np.float32), b.astype(np.float32)
        want = by_definition(a, b)
        assert same_picture(a, b) == want
        kinds.add((kind, want))
        agree += want
    assert 0 < agree < 3000 and len(kinds) >= 5  # both answers, in the correlated and the flat cases


# ------------------------------------------------------------------------------ real footage
@pytest.mark.parametrize("detect_every", [1, 4])
def test_two_people_clip_gives_two_tracks_with_stable_ids(detect_every, tmp_path):
    """The bundled interview clip: track 0 is the woman (the larger face, right), track 1 the man,
    on every looked-at frame; predict's loader and extract-faces link the same tracks."""
    loader = FaceClipLoader(num_snippets=2, size=(32, 32), detect_every=detect_every)
    video = loader.load_tracks(two_people())
    assert [(t.id, t.status) for t in video.tracks] == [(0, "kept"), (1, "kept")]
    looked_at = list(range(0, 9, detect_every))
    for track, person in zip(video.tracks, ("woman", "man")):
        # found on (almost) every looked-at frame (dlib misses the woman in frame 1), never on the other person
        assert set(track.frames) <= set(looked_at) and len(track.frames) >= len(looked_at) - 1
        eyes_mouth = np.array(LANDMARKS[("two_people_320x192_test_vd_rc", person)])
        for x0, y0, x1, y1 in track.rows[:, :4]:
            assert ((eyes_mouth >= [x0, y0]) & (eyes_mouth <= [x1, y1])).all()
    assert sorted(video.clips) == [0, 1] and not video.failures
    extract_face_frames(two_people(), tmp_path / "tp", detect_every=detect_every)
    meta = json.loads((tmp_path / "tp" / "faces.json").read_text())
    assert meta["tracks"] == T.tracks_to_json(video.tracks) and meta["samples"]["tracks"] == [0, 1]


@pytest.mark.parametrize("video, detect_every", [(two_people, 1), (two_people, 4), (carphone, 4), (carphone, 32)])
def test_training_clip_of_every_track_equals_its_prediction_clip(video, detect_every, tmp_path):
    """The one crop policy, per track: extract-faces + FaceFramesDataset(faces="all") give each track's
    clip as predict's loader does, the same tensor (k = 32 > T: interpolated boxes too)."""
    extract_face_frames(video(), tmp_path / "faces", detect_every=detect_every)
    common = dict(num_snippets=8, snippet_len=4, size=(48, 48), interpolation="bicubic")
    dataset = FaceFramesDataset([ManifestEntry(tmp_path / "faces", 1)], faces="all", **common)
    tracked = FaceClipLoader(detect_every=detect_every, **common).load_tracks(video())
    assert dataset.tracks == sorted(tracked.clips) and len(dataset) == len(tracked.clips)
    for index, track in enumerate(dataset.tracks):
        pixels, label = dataset[index]
        assert torch.equal(pixels, tracked.clips[track].pixels) and label.item() == 1.0
        assert dataset.item_info(index) == {"id": str(tmp_path / "faces"), "method": None, "track": track,
                                            "face_coverage": 1.0}
    if video is two_people:  # the two tracks' clips are different faces
        assert not torch.equal(tracked.clips[0].pixels, tracked.clips[1].pixels)


# ------------------------------------------------------------------------------ composites of real footage
def _canvas(left: np.ndarray, right: np.ndarray | None, width: int = 328) -> np.ndarray:
    canvas = np.full((144, width, 3), 90, np.uint8)
    canvas[:, :176] = left
    if right is not None:
        h, w = right.shape[:2]
        canvas[(144 - h) // 2:(144 - h) // 2 + h, 176:176 + w] = right
    return canvas


def _smaller(frame: np.ndarray, scale: float = 0.85) -> np.ndarray:
    """The frame mirrored (another face, to the tracker) and scaled down."""
    return np.asarray(Image.fromarray(np.ascontiguousarray(frame[:, ::-1])).resize(
        (round(176 * scale), round(144 * scale)), Image.BILINEAR))


@pytest.fixture(scope="module")
def footage():
    return decode_all(carphone())


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from dynsnip.hub import save_pretrained

    torch.manual_seed(0)
    model = timm.create_model("dil_resnet18", num_classes=1, channels=[8, 16, 32, 64], stem_width=8,
                              test_num_snippets=8)
    return save_pretrained(model, tmp_path_factory.mktemp("ckpt") / "detector", pretrained_cfg={"input_size": (3, 32, 32)},
                           base_model=None)


def predict_json(args):
    stdout, saved = io.StringIO(), sys.stdout
    sys.stdout = stdout
    try:
        code = main(["predict", *map(str, args), "--json", "--no-progress", "--workers", "0"])
    finally:
        sys.stdout = saved
    return code, json.loads(stdout.getvalue())


def test_a_picture_on_the_wall_is_never_the_face_scored(footage, checkpoint, tmp_path):
    """A still face in a picture: dropped as static (listed, never scored). Alone in the video: the
    video fails (no_face, naming the rule), in predict and extract-faces; beside a real person:
    the person is scored."""
    picture = footage[0][20:120, 40:130].copy()
    alone = []
    for frame in faceless_frames(80, (176, 144)):
        frame = frame.copy()
        frame[30:130, 60:150] = picture
        alone.append(frame)
    alone = encode(tmp_path / "picture_only.mp4", alone)
    with_person = encode(tmp_path / "person_and_picture.mp4",
                         [_canvas(f, _smaller(footage[0][10:134, 20:156], 0.75)) for f in footage])
    code, report = predict_json([alone, with_person, "--checkpoint", checkpoint])
    assert code == 1
    failed, scored = report["videos"]
    assert failed["status"] == "error" and failed["reason"] == "no_face"
    assert "static" in failed["error"] and "photo or poster" in failed["error"]
    assert [t["status"] for t in failed["tracks"]] == ["static"]
    assert scored["status"] == "ok" and report["faces"] == "all"
    statuses = {t["id"]: t["status"] for t in scored["tracks"]}
    assert sorted(statuses.values()) == ["scored", "static"]
    person = next(t for t in scored["tracks"] if t["status"] == "scored")
    assert person["box"]["median"][2] <= 176  # the person on the left, not the picture
    assert scored["deciding_track"] == person["id"] and scored["scored_tracks"] == [person["id"]]
    with pytest.raises(NoFaceError, match="static"):
        extract_face_frames(alone, tmp_path / "picture_folder")
    assert not (tmp_path / "picture_folder").exists()
    # --faces largest is the policy of before: it cannot tell a picture from a face
    code, largest = predict_json([alone, "--checkpoint", checkpoint, "--faces", "largest"])
    assert code == 0 and largest["videos"][0]["status"] == "ok" and "tracks" not in largest["videos"][0]


def test_a_face_seen_for_two_frames_and_a_person_leaving(footage, checkpoint, tmp_path):
    """A face pasted into frames 40-47 only (looked-at frames 40 and 44): dropped as short, the
    person is scored. The person leaving for 24 frames: one track, the snippets in the gap
    borrow its box (flagged). Leaving for 72 frames: two tracks, each found in too few of the
    snippets' looked-at frames: the video fails low_face_coverage and lists both."""
    passer = _smaller(footage[0], 0.85)
    flash = encode(tmp_path / "flash.mp4", [_canvas(f, passer if 40 <= i < 48 else None) for i, f in enumerate(footage)])
    blank = faceless_frames(120, (176, 144))
    short_gap = encode(tmp_path / "away_short.mp4", [blank[i] if 40 <= i < 64 else f for i, f in enumerate(footage)])
    long_gap = encode(tmp_path / "away_long.mp4", [blank[i] if 20 <= i < 92 else f for i, f in enumerate(footage)])
    code, report = predict_json([flash, short_gap, long_gap, "--checkpoint", checkpoint])
    assert code == 1
    flashed, short, long = report["videos"]
    assert [(t["id"], t["status"], t["detections"]) for t in flashed["tracks"]] == [(0, "scored", 30), (1, "short", 2)]
    assert flashed["tracks"][1]["first_frame"] == 40 and "too few" in flashed["tracks"][1]["dropped"]
    assert [t["status"] for t in short["tracks"]] == ["scored"]
    assert [s["face_found"] for s in short["snippets"]].count(False) == 1  # the snippet at frames 50-53
    assert long["status"] == "error" and long["reason"] == "low_face_coverage"
    assert [(t["first_frame"], t["last_frame"]) for t in long["tracks"]] == [(0, 16), (92, 116)]
    assert all(t["face_coverage"] < 0.5 for t in long["tracks"])
    # each unscored track as docs/video.md lists it: its reason as status, and why in not_scored
    assert [t["status"] for t in long["tracks"]] == ["low_face_coverage"] * 2
    assert all("face found in only" in t["not_scored"] for t in long["tracks"])


def test_faces_largest_keeps_the_report_of_before(checkpoint, tmp_path):
    """--faces largest: the header and every entry are what predict wrote before face tracks (the
    largest face's clip, scored alone); with --faces all a one-face video scores the same."""
    from dynsnip.hub import load_model

    code, largest = predict_json([carphone(), two_people(), "--checkpoint", checkpoint, "--faces", "largest"])
    assert code == 0
    assert set(largest) == {"model", "weights", "trained_on", "training_data", "num_snippets", "snippet_len",
                            "face_detector", "detect_every", "min_face_coverage", "threshold", "videos", "summary"}
    model = load_model(checkpoint).eval()
    loader = FaceClipLoader.from_model(model, cap_snippets=True)
    for entry, path in zip(largest["videos"], (carphone(), two_people())):
        entry.pop("note", None)  # the command's note on a video with fewer distinct snippets than asked for
        assert entry == score_face_clip(model, loader(path), path, 0.5, "cpu")
    code, every = predict_json([carphone(), "--checkpoint", checkpoint])
    one = every["videos"][0]
    for key in ("fake_probability", "verdict", "snippets", "face_coverage", "frames_checked", "frames_with_face"):
        assert one[key] == largest["videos"][0][key]
    assert one["deciding_track"] == 0 and len(one["tracks"]) == 1


def test_table_lists_every_track_and_marks_the_deciding_one(checkpoint, capsys):
    assert main(["predict", str(two_people()), "--checkpoint", str(checkpoint), "--no-progress", "--workers", "0",
                 "--video-score", "mean"]) == 0
    table = capsys.readouterr().out
    assert "2 of 2 face track(s) scored (mean over tracks 0, 1)" in table
    assert "track 0: frames 0-8" in table and "track 1: frames 0-8" in table
    assert main(["predict", str(two_people()), "--checkpoint", str(checkpoint), "--no-progress", "--workers", "0"]) == 0
    table = capsys.readouterr().out
    assert table.count("* track") == 1 and "(decides the verdict)" in table


# ------------------------------------------------------------------------------ the swapped face
SIZE, U, K = 24, 2, 4


TWO_FACES_DETECTOR = "blazeface"


@pytest.fixture(scope="module")
def two_faces(footage, tmp_path_factory):
    """A two-person clip from bundled footage (the carphone face, and beside it a smaller mirrored
    copy), and its fake: only the smaller face carries a temporal pseudo-fake (the blend of a
    frame-by-frame face swap flickering from frame to frame)."""
    from dynsnip.data.pseudo_fakes import PseudoFakeGenerator

    folder = tmp_path_factory.mktemp("two_faces")
    frames = np.stack([_canvas(f, _smaller(f)) for f in footage])
    real = encode(folder / "real.mp4", list(frames))
    # BlazeFace full range: its box sizes keep the two faces (0.85 apart) in order on every frame, which the
    # --faces largest comparison below needs (the short-range first stage of auto swaps them on 1 of 30 frames)
    video = FaceClipLoader(num_snippets=U, size=(SIZE, SIZE), detect_every=K,
                           face_detector=TWO_FACES_DETECTOR).load_tracks(real)
    assert len(video.clips) == 2
    sides = {t.id: t.summary()["box"]["side_max"] for t in video.tracks}
    small, large = min(sides, key=sides.get), max(sides, key=sides.get)
    rows = dict(zip(video.track(small).frames, video.track(small).rows[:, :4]))
    boxes = np.stack([rows[min(rows, key=lambda f: abs(f - i))] for i in range(len(frames))])
    generator = PseudoFakeGenerator(mode="temporal", magnitude="strong")
    fake = encode(folder / "fake.mp4", list(generator(frames, boxes=boxes, seed=12345, snippet_len=4).frames))
    return dict(frames=frames, real=real, fake=fake, video=video, small=small, large=large, generator=generator)


def test_the_source_comparison_picks_the_pseudo_faked_track(two_faces, tmp_path):
    """extract-faces of the fake with its source: only the pseudo-faked (smaller) face is a sample,
    the other face is dropped from the fake (not a real sample); faces.json and faces.csv say so."""
    manifest = tmp_path / "videos.csv"
    manifest.write_text(f"path,label,split,source\n{two_faces['real']},0,train,\n{two_faces['fake']},1,train,"
                        f"{two_faces['real']}\n")
    out = tmp_path / "faces"
    assert main(["extract-faces", "--manifest", str(manifest), "--out", str(out), "--workers", "1", "--no-progress"]) == 0
    samples = json.loads((out / "fake" / "faces.json").read_text())["samples"]
    small, large = two_faces["small"], two_faces["large"]
    assert samples["tracks"] == [small]
    assert samples["evidence"][str(small)] > 2 * samples["evidence"][str(large)]  # re-encoding noise only
    rows = (out / "faces.csv").read_text().splitlines()
    assert rows[0].endswith("face_coverage,tracks,track_evidence")
    assert rows[1].split(",")[-2] == "0;1" and rows[2].split(",")[-2] == str(small)  # the real: both faces
    dataset = FaceFramesDataset(out / "faces.csv", faces="all", num_snippets=U, size=(SIZE, SIZE))
    assert [(e.label, t) for e, t in zip(dataset.entries, dataset.tracks)] == [(0, 0), (0, 1), (1, small)]


@pytest.mark.slow
def test_a_detector_finds_the_swapped_smaller_face_that_largest_misses(two_faces):
    """A tiny detector trained here on the clip's faces (real) and temporal pseudo-fakes of the
    smaller face (different draws from the test video's) separates them; predict scores the fake's
    smaller face and calls the video fake, --faces largest scores the untouched larger face."""
    from dynsnip.data import crop_and_resize, frames_to_tensor, sample_snippets, snippet_crops

    frames, video, generator = two_faces["frames"], two_faces["video"], two_faces["generator"]
    small, large = two_faces["small"], two_faces["large"]
    loader = FaceClipLoader(num_snippets=U, snippet_len=4, size=(SIZE, SIZE), detect_every=K,
                            face_detector=TWO_FACES_DETECTOR)
    looked_at = list(range(0, len(frames), K))

    def clip(track, indices, seed=None):
        crops = snippet_crops(indices.numpy(), video.track(track).detections(looked_at), (328, 144), 1.3, K,
                              len(frames))
        out = []
        for u, snippet in enumerate(indices.tolist()):
            x0, y0, x1, y1 = crops.boxes[u]
            region = frames[snippet, y0:y1, x0:x1]
            if seed is not None:
                region = generator(region, seed=[seed, u], snippet_len=4).frames
            out.append(crop_and_resize(region, None, (SIZE, SIZE), "bilinear"))
        return frames_to_tensor(np.concatenate(out), loader.mean, loader.std)

    g = torch.Generator().manual_seed(0)
    pool = [(clip(small, sample_snippets(120, U, 4, train=True, generator=g), seed=n), 1.0) if n % 2 else
            (clip(large if n % 8 == 0 else small, sample_snippets(120, U, 4, train=True, generator=g)), 0.0)
            for n in range(64)]
    x, y = torch.stack([p for p, _ in pool]), torch.tensor([label for _, label in pool])
    torch.manual_seed(0)
    model = timm.create_model("dil_resnet18", num_classes=1, channels=[8, 16, 32, 64], stem_width=8)
    optimizer = torch.optim.Adam(model.parameters(), 5e-3)
    for _ in range(90):
        pick = torch.randperm(len(pool), generator=g)[:8]
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x[pick])[:, 0], y[pick])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    fake, real = two_faces["fake"], two_faces["real"]
    every = predict_videos(model, [fake, real], loader=loader, workers=0)
    largest = predict_videos(model, [fake], loader=loader, workers=0, faces="largest")
    on_fake = {t["id"]: t["fake_probability"] for t in every[0]["tracks"]}
    on_real = {t["id"]: t["fake_probability"] for t in every[1]["tracks"]}
    assert every[0]["verdict"] == "fake" and every[0]["deciding_track"] == small
    assert on_fake[small] >= 0.5 > on_fake[large]
    assert on_real[small] < on_fake[small] - 0.3  # the untouched smaller face is not what it flags
    assert largest[0]["verdict"] == "real" and largest[0]["fake_probability"] == on_fake[large]
    # --faces largest says that the clip it scored came from a frame with two faces
    assert largest[0]["faces_note"].startswith("up to 2 faces in a frame looked at") and "faces_note" not in every[0]


def test_a_face_track_below_the_coverage_is_no_sample_and_not_scored_from_a_folder(footage, tmp_path,
                                                                                    monkeypatch):
    """A second face seen on the first 12 of 40 frames (3 of the 10 looked-at frames, a kept track):
    predict does not score it (low_face_coverage); extract-faces does not make it a sample (listed under
    samples' low_face_coverage), and FaceFramesDataset fails its item (a folder that still lists it),
    so training and evaluate on folders use the faces predict scores."""
    frames = [_canvas(f, _smaller(f) if i < 12 else None) for i, f in enumerate(footage[:40])]
    video = encode(tmp_path / "leaves.mp4", frames)
    common = dict(num_snippets=8, snippet_len=4, size=(SIZE, SIZE))
    tracked = FaceClipLoader(detect_every=K, face_detector=TWO_FACES_DETECTOR, **common).load_tracks(video)
    assert [t.status for t in tracked.tracks] == ["kept", "kept"]
    assert sorted(tracked.clips) == [0] and tracked.failures[1].reason == "low_face_coverage"
    out = tmp_path / "faces"
    extract_face_frames(video, out, detect_every=K, face_detector=TWO_FACES_DETECTOR)
    meta = json.loads((out / "faces.json").read_text())
    assert meta["samples"]["tracks"] == [0] and meta["samples"]["low_face_coverage"] == {"1": 0.3}
    dataset = FaceFramesDataset([ManifestEntry(out, 0)], faces="all", **common)
    assert dataset.tracks == sorted(tracked.clips)
    assert torch.equal(dataset[0][0], tracked.clips[0].pixels)
    meta["samples"]["tracks"] = [0, 1]  # a folder written before the rule
    (out / "faces.json").write_text(json.dumps(meta))
    dataset = FaceFramesDataset([ManifestEntry(out, 0)], faces="all", **common)
    assert dataset.tracks == [0, 1] and torch.equal(dataset[0][0], tracked.clips[0].pixels)
    with pytest.raises(LowFaceCoverageError, match="face track 1"):
        dataset[1]
    # no sample track reaches the coverage (here: only the second face kept): the video fails, as predict's would
    from dynsnip.data.faces import extraction

    kept = extraction.kept_tracks
    monkeypatch.setattr(extraction, "kept_tracks", lambda tracks: [t for t in kept(tracks) if t.id == 1])
    with pytest.raises(LowFaceCoverageError, match="track 1: 30%"):
        extract_face_frames(video, tmp_path / "only1", detect_every=K, face_detector=TWO_FACES_DETECTOR)
    assert not (tmp_path / "only1").exists()


def test_a_verdict_that_a_face_not_scored_could_change_is_partial(footage, tmp_path):
    """The second face of the clip above is seen but not scored. A "real" verdict (max over tracks) or
    any mean could change had it been scored: flagged ``partial``, counted in predict's summary, exit 1;
    a "fake" verdict by the max cannot be lowered by it: not partial."""
    from dynsnip.scoring import score_tracks

    frames = [_canvas(f, _smaller(f) if i < 12 else None) for i, f in enumerate(footage[:40])]
    video = encode(tmp_path / "leaves.mp4", frames)
    tracked = FaceClipLoader(num_snippets=8, snippet_len=4, size=(SIZE, SIZE), detect_every=K,
                             face_detector=TWO_FACES_DETECTOR).load_tracks(video)
    assert sorted(tracked.clips) == [0] and sorted(tracked.failures) == [1]
    model = timm.create_model("dil_resnet18", num_classes=1, channels=[8, 16, 32, 64], stem_width=8).eval()
    with torch.no_grad():
        model.fc.weight.zero_()
        model.fc.bias.fill_(0.0)  # P(fake) = 0.5 whatever the clip
    partial = {}
    for threshold, how in ((0.6, "max"), (0.4, "max"), (0.4, "mean")):
        result = score_tracks(model, tracked, video, threshold, "cpu", video_score=how)
        partial[result["verdict"], how] = result["partial"]
        assert "not scored" in result["tracks_note"]
    assert partial == {("real", "max"): True, ("fake", "max"): False, ("fake", "mean"): True}
    from dynsnip.cli.predict import format_table

    assert format_table([result]).splitlines()[-1] == (
        "1 video(s): 1 scored, 0 failed; 1 verdict(s) partial (a face seen but not scored could change it)")


def test_evaluate_lists_each_face_tracks_probability_of_an_extracted_folder(checkpoint, tmp_path):
    """--faces all on extract-faces folders: the per-video report gives every scored face track's fake
    probability (``tracks``), and the video's score is the largest of them (video_score max)."""
    from dynsnip.engine import evaluate

    extract_face_frames(two_people(), tmp_path / "faces", detect_every=4)
    model = dynsnip.load_model(checkpoint).eval()
    dataset = FaceFramesDataset([ManifestEntry(tmp_path / "faces", 1)], faces="all", num_snippets=2, snippet_len=4,
                                size=(32, 32))
    result = evaluate(model, dataset, batch_size=2, num_workers=0, progress=False, video_score="max")
    (video,) = result.predictions
    tracks = dict(item.split(":") for item in video["tracks"].split(";"))
    assert sorted(tracks) == ["0", "1"]
    assert video["score"] == pytest.approx(max(float(p) for p in tracks.values()), abs=1e-4)
