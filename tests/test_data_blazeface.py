"""The package's own BlazeFace: bundled weights, MediaPipe's anchors / decoding / weighted NMS, faces and
keypoints on real frames, batching, the `auto` cascade, and identical training and prediction crops."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from video_fixtures import LANDMARKS, carphone, faceless_frames, two_people

from dynsnip.data import FaceClipLoader, FaceFramesDataset, ManifestEntry, bundled_video, extract_face_frames, read_frames
from dynsnip.data.faces import blazeface as bf
from dynsnip.data.faces.detectors import (
    BLAZEFACE_MTCNN_FRAMING,
    AutoFaceDetector,
    BlazeFaceDetector,
    DlibFaceDetector,
    Face,
    MtcnnFaceDetector,
    create_face_detector,
    detect_faces,
    reframe_boxes,
)
from project_scripts import load_script

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module", params=["full", "short"])
def detector(request):
    return BlazeFaceDetector(request.param)


def inside(box, points):
    x0, y0, x1, y1 = box
    return all(x0 <= x < x1 and y0 <= y < y1 for x, y in points)


def test_bundled_weights_load_strictly_with_their_licence():
    from safetensors.torch import load_file

    state = load_file(str(bf.WEIGHTS_FILE))
    assert {name.split(".")[0] for name in state} == {"short_range", "full_range"}
    for model, network in bf.NETWORKS.items():
        mine = {k[len(model) + 7:]: v for k, v in state.items() if k.startswith(f"{model}_range.")}
        missing, unexpected = network().load_state_dict(mine, strict=False)
        assert not missing and not unexpected
    assert all(t.dtype == torch.float32 and torch.isfinite(t).all() for t in state.values())
    licence = (bf.WEIGHTS_FILE.parent / "LICENSE-mediapipe.txt").read_text()
    assert "Apache License" in licence and "Version 2.0" in licence
    assert "MediaPipe" in (bf.WEIGHTS_FILE.parent / "README.md").read_text()
    assert "MediaPipe" in (ROOT / "NOTICE").read_text() and "blazeface" in (ROOT / "NOTICE").read_text()


def test_anchor_grids_follow_the_ssd_anchor_options():
    short = bf.anchor_centres(128, (8, 16, 16, 16), True)
    full = bf.anchor_centres(192, (4,), False)
    assert short.shape == (896, 2) and full.shape == (2304, 2)
    # 16x16 cells of 8 px with 2 anchors each, then 8x8 cells of 16 px with 6 (the three stride-16 layers share it)
    assert short[0].tolist() == short[1].tolist() == [4.0, 4.0] and short[2].tolist() == [12.0, 4.0]
    assert short[32].tolist() == [4.0, 12.0]  # row-major: the next row after 16 cells x 2 anchors
    assert (short[512:518] == torch.tensor([8.0, 8.0])).all() and short[518].tolist() == [24.0, 8.0]
    assert full[0].tolist() == [2.0, 2.0] and full[1].tolist() == [6.0, 2.0] and full[-1].tolist() == [190.0, 190.0]


def test_decode_reads_x_before_y_relative_to_the_anchor_and_clips_the_logit():
    anchors = torch.tensor([[10.0, 20.0]])
    raw = torch.zeros(1, 16)
    raw[0, :4] = torch.tensor([1.0, 2.0, 6.0, 8.0])  # centre offset x, y; width, height
    raw[0, 4:] = torch.arange(12.0)
    boxes, scores = bf.decode(raw, torch.tensor([1000.0]), anchors)
    assert boxes[0, :4].tolist() == [8.0, 18.0, 14.0, 26.0]
    assert boxes[0, 4:6].tolist() == [10.0, 21.0] and boxes[0, 14:16].tolist() == [20.0, 31.0]
    assert scores.item() == pytest.approx(torch.sigmoid(torch.tensor(100.0)).item())


def test_weighted_nms_averages_one_faces_candidates_by_score_and_keeps_other_faces():
    boxes = torch.tensor([[0.0, 0, 10, 10, 5, 5],
                          [1.0, 1, 11, 11, 7, 7],  # IoU 0.68 with the first: the same face
                          [50.0, 50, 60, 60, 55, 55],  # another face
                          [0.0, 0, 10, 30, 9, 9]])  # IoU 0.33 with the first: above 0.3, merged too
    scores = torch.tensor([0.9, 0.6, 0.7, 0.3])
    faces = bf.weighted_nms(boxes, scores, 0.3)
    assert faces.shape == (2, 7)
    weights = torch.tensor([0.9, 0.6, 0.3])
    expected = (boxes[[0, 1, 3]] * weights[:, None]).sum(0) / weights.sum()
    torch.testing.assert_close(faces[0, [0, 1, 2, 3, 5, 6]], expected)
    assert faces[0, 4].item() == pytest.approx(0.9)  # the best candidate's score, not an average
    torch.testing.assert_close(faces[1], torch.tensor([50.0, 50, 60, 60, 0.7, 55, 55]))
    assert bf.weighted_nms(boxes[:0], scores[:0]).shape == (0, 7)


def _weighted_nms_by_masks(detections: torch.Tensor, scores: torch.Tensor, threshold: float) -> torch.Tensor:
    """The suppression written with boolean masks over the candidates (its form before the clustering
    moved to Python lists): the reference the faster form must match bit for bit."""
    order = scores.argsort(descending=True, stable=True)
    detections, scores = detections[order], scores[order]
    overlap = bf._iou_matrix(detections[:, :4]) > threshold
    remaining = torch.ones(len(scores), dtype=torch.bool)
    faces = []
    for best in range(len(scores)):
        if not remaining[best]:
            continue
        cluster = remaining & overlap[best]
        cluster[best] = True
        weights = scores[cluster]
        merged = (detections[cluster] * weights[:, None]).sum(dim=0) / weights.sum()
        faces.append(torch.cat([merged[:4], scores[best:best + 1], merged[4:]]))
        remaining &= ~cluster
    return torch.stack(faces) if faces else detections.new_zeros((0, detections.shape[1] + 1))


def test_weighted_nms_gives_the_same_bits_as_the_mask_form_on_crowded_candidates():
    """Clusters that chain and overlap, duplicate boxes and tied scores: the same faces, the same bits."""
    generator = torch.Generator().manual_seed(0)
    for trial in range(300):
        n = int(torch.randint(0, 30, (1,), generator=generator))
        centres = torch.rand(n, 2, generator=generator) * 60
        sides = torch.rand(n, 2, generator=generator) * 30 + 1
        keypoints = torch.rand(n, 12, generator=generator) * 60
        detections = torch.cat([centres - sides / 2, centres + sides / 2, keypoints], dim=1)
        if trial % 3 == 0 and n:
            detections[: n // 2] = detections[0]
        scores = torch.rand(n, generator=generator) * 0.5 + 0.5
        if trial % 4 == 0:
            scores = (scores * 4).round() / 4
        faces, expected = bf.weighted_nms(detections, scores, 0.3), _weighted_nms_by_masks(detections, scores, 0.3)
        assert faces.shape == expected.shape and torch.equal(faces, expected), trial


def test_tensorflow_layout_helpers():
    x = torch.arange(2 * 8 * 3 * 5, dtype=torch.float32).reshape(2, 8, 3, 5)  # C = 2 after depth to space
    y = bf._depth_to_space(x)
    for i in range(2):
        for j in range(2):
            for c in range(2):  # TF's DEPTH_TO_SPACE: input channel (i * 2 + j) * C + c
                assert torch.equal(y[:, c, i::2, j::2], x[:, (i * 2 + j) * 2 + c])
    # "SAME" padding with stride 2 on an even size: all of it after (bottom/right)
    z = torch.rand(1, 3, 8, 8).contiguous(memory_format=torch.channels_last)
    padded = bf._same_padding(z, 3, 2)
    assert padded.shape == (1, 3, 9, 9) and torch.equal(padded[..., :8, :8], z) and padded[..., 8, :].abs().sum() == 0
    assert padded.is_contiguous(memory_format=torch.channels_last)
    # a stride-2 "SAME" convolution without padding the activation reads the same pixels as with it
    conv = torch.nn.Conv2d(3, 3, 3, 2, groups=3)
    torch.testing.assert_close(bf._conv_same(z, conv), conv(padded))


@pytest.mark.parametrize("name, index", [("carphone_pristine", 0), ("carphone_pristine", 60),
                                         ("carphone_pristine", 89), ("Zhling_1280x720", 10)])
def test_box_eyes_nose_and_mouth_on_real_frames(detector, name, index):
    frame = read_frames(bundled_video(name), [index])[0]
    rows = detector(frame)
    assert rows.shape == (1, 15)  # one face, no false positive
    face = Face.from_row(rows[0])
    left_eye, right_eye, mouth = LANDMARKS[(name, index)]
    assert inside(face.box, [left_eye, right_eye, mouth])
    eye_distance = np.hypot(right_eye[0] - left_eye[0], right_eye[1] - left_eye[1])
    assert 1.5 * eye_distance < face.box[2] - face.box[0] < 4 * eye_distance
    # MediaPipe's right eye of the person is the left eye as seen in the image
    assert np.hypot(*(face.keypoints[0] - left_eye)) < 0.3 * eye_distance
    assert np.hypot(*(face.keypoints[1] - right_eye)) < 0.3 * eye_distance
    assert face.keypoints[0, 1] < face.keypoints[2, 1] < mouth[1]  # the nose between eyes and mouth
    assert np.isnan(face.keypoints[3:]).all()  # no mouth corners in MediaPipe's keypoints
    six = detector.detect_batch_keypoints(frame[None])[0]
    assert six.shape == (1, 17) and np.array_equal(six[:, :11], rows[:, :11])
    assert np.hypot(*(six[0, 11:13] - mouth)) < 0.3 * eye_distance  # mouth centre
    ears = six[0, 13:17].reshape(2, 2)
    assert ears[0, 0] < ears[1, 0] and inside(face.box + [-eye_distance, 0, eye_distance, 0], ears)


def test_both_faces_of_the_two_person_clip(detector):
    rows = detector(read_frames(two_people(), [0])[0])
    assert len(rows) == 2
    for who in ("woman", "man"):
        assert sum(inside(r[:4], LANDMARKS[("two_people_320x192_test_vd_rc", who)]) for r in rows) == 1


def test_no_face_in_faceless_content(detector):
    assert all(len(faces) == 0 for faces in detect_faces(np.stack(faceless_frames(4)), detector))


def test_rows_do_not_depend_on_the_batch(detector):
    """extract-faces and predict hand the detector different groups of frames: each frame's rows must
    be bitwise the same alone and in any batch (and so the crops of training and prediction)."""
    frames = read_frames(bundled_video("carphone_pristine"), [0, 30, 60, 90, 119])
    alone = [detector(f) for f in frames]
    together = detector.detect_batch(np.stack(frames))
    small = BlazeFaceDetector(detector.model, batch_size=2).detect_batch(np.stack(frames))
    for a, b, c in zip(alone, together, small):
        assert np.array_equal(a, b, equal_nan=True) and np.array_equal(a, c, equal_nan=True)


def test_tilted_head_and_small_face_found_where_dlib_misses():
    from PIL import Image

    frame = read_frames(bundled_video("carphone_pristine"), [0])[0]
    tilted = np.asarray(Image.fromarray(frame).rotate(40, resample=Image.BICUBIC))
    assert len(DlibFaceDetector()(tilted)) == 0
    found = BlazeFaceDetector("short")(tilted)
    assert len(found) == 1
    assert np.hypot(*((found[0, :2] + found[0, 2:4]) / 2 - np.array([88, 72]))) < 30  # the rotated face
    # a wide shot: the clip shrunk to 1/3 in a frame of its size (a ~17 px face): full range only
    small = np.zeros_like(frame)
    small[48:96, 59:117] = np.asarray(Image.fromarray(frame).resize((58, 48), Image.BILINEAR))
    assert len(BlazeFaceDetector("full")(small)) == 1


def test_framing_moves_the_box_to_mtcnns_and_keeps_the_keypoints():
    rows = np.array([[10.0, 20.0, 30.0, 40.0, 0.9, 1, 2, 3, 4, 5, 6, *[np.nan] * 4]])
    out = reframe_boxes(rows, 0.5, 2.0, 0.1, -0.25)  # side 20, centre (20, 30) -> (22, 25)
    np.testing.assert_allclose(out[0, :4], [17, 5, 27, 45])
    assert np.array_equal(out[0, 4:], rows[0, 4:], equal_nan=True)
    frames = read_frames(bundled_video("carphone_pristine"), [0, 60])
    mtcnn = detect_faces(frames, MtcnnFaceDetector())
    from dynsnip.data.faces.boxes import box_iou

    for model in ("full", "short"):
        framed = detect_faces(frames, BlazeFaceDetector(model))
        raw = detect_faces(frames, BlazeFaceDetector(model, framing="mediapipe"))
        for a, b, ref in zip(framed, raw, mtcnn):
            np.testing.assert_allclose(a, reframe_boxes(b, *BLAZEFACE_MTCNN_FRAMING[model]))
            assert box_iou(ref[0, :4], a[:, :4])[0] > box_iou(ref[0, :4], b[:, :4])[0]  # closer to MTCNN's box


def test_auto_is_a_cascade_asking_each_detector_only_where_the_ones_before_missed():
    auto = create_face_detector("auto")
    assert [type(d) for d in auto.detectors] == [BlazeFaceDetector, BlazeFaceDetector, MtcnnFaceDetector]
    assert [(d.model, d.min_score) for d in auto.detectors[:2]] == [("short", 0.6), ("full", 0.7)]
    assert [(d.model, d.min_score) for d in AutoFaceDetector().detectors[:2]] == [("short", 0.6), ("full", 0.7)]
    asked = {"second": [], "third": []}

    def stage(name, finds):
        def detect(frame):
            if name in asked:
                asked[name].append(int(frame[0, 0, 0]))
            return np.array([[0, 0, 10, 10, 1.0]]) if int(frame[0, 0, 0]) in finds else np.zeros((0, 5))
        return detect

    frames = np.stack([np.full((8, 8, 3), v, np.uint8) for v in (1, 2, 3, 4)])
    out = AutoFaceDetector(stage("first", {1}), stage("second", {2}), stage("third", {3})).detect_batch(frames)
    assert asked == {"second": [2, 3, 4], "third": [3, 4]}
    assert [len(r) for r in out] == [1, 1, 1, 0]


@pytest.mark.parametrize("face_detector", ["blazeface", "auto"])
def test_training_clip_equals_prediction_clip(tmp_path, face_detector):
    """The crop policy is one whatever the detector: extract-faces + FaceFramesDataset and predict's
    FaceClipLoader give the same tensor for the same frames (carphone, a moving head)."""
    out = tmp_path / "faces"
    extract_face_frames(carphone(), out, face_detector=face_detector, detect_every=4)
    assert "BlazeFaceDetector" in json.loads((out / "faces.json").read_text())["face_detector"]
    common = dict(num_snippets=8, snippet_len=4, size=(64, 64), interpolation="bicubic")
    from_folder, _ = FaceFramesDataset([ManifestEntry(out, 0)], **common)[0]
    clip = FaceClipLoader(face_detector=face_detector, detect_every=4, **common)(carphone())
    assert clip.face_found.all()
    assert torch.equal(from_folder, clip.pixels)
    assert len({tuple(b) for b in clip.crop_boxes.tolist()}) > 1  # the head moves: boxes differ between snippets


def test_extract_faces_command_takes_blazeface(tmp_path, capsys):
    from dynsnip.cli import main

    out = tmp_path / "faces"
    assert main(["extract-faces", str(two_people()), "--out", str(out), "--face-detector", "blazeface-short",
                 "--workers", "1", "--no-progress"]) == 0
    meta = json.loads(next(out.glob("*/faces.json")).read_text())
    assert "model='short'" in meta["face_detector"] and meta["face_coverage"] == 1.0
    with pytest.raises(SystemExit, match="2"):
        main(["extract-faces", str(two_people()), "--out", str(tmp_path / "x"), "--face-detector", "retinaface"])


def _benchmark(name: str):
    return load_script(f"benchmarks/{name}.py")


def test_detector_benchmark_measures_coverage_agreement_and_hard_poses(tmp_path):
    out = tmp_path / "detectors.json"
    assert _benchmark("face_detectors").main(["--videos", str(two_people()), "--frames", "2", "--detectors",
                                              "mtcnn,blazeface-short,dlib+mtcnn", "--json", str(out)]) == 0
    row = json.loads(out.read_text())["agreement"]["two_people_320x192_test_vd_rc.mp4"]
    assert row["frames"] == 2 and row["mtcnn"]["crop_iou_mean"] == 1.0  # MTCNN against itself
    short = row["blazeface-short"]
    assert short["coverage"] == 1.0 and 0.5 < short["crop_iou_mean"] < 1.0
    assert short["rotated"] == 1.0 and short["covered"] == 1.0 and short["small"] == 0.0  # short range: no small faces
    assert row["dlib+mtcnn"]["small"] == 1.0  # dlib misses the small faces, MTCNN (the cascade's second) finds them


def test_extraction_benchmark_reports_wall_and_cpu_time_against_decoding(tmp_path):
    out = tmp_path / "extraction.json"
    scratch = tmp_path / "scratch"
    assert _benchmark("face_extraction").main(["--videos", str(two_people()), "--repeats", "1", "--every", "4",
                                               "--backends", "blazeface-short", "--no-full-resolution", "--write",
                                               "--formats", "png", "--scratch", str(scratch), "--command", "2",
                                               "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    rows = {r["setting"]: r for r in result["rows"]}
    assert rows["blazeface-short, k=4: extract_face_frames"]["coverage"] == 1.0
    assert scratch.is_dir() and not any(scratch.iterdir())  # written there, and cleaned up
    assert 0 < result["file_creation_seconds"] < 1
    assert rows["decode only"]["x_decode"] == rows["decode only"]["x_decode_cpu"] == 1.0
    assert rows["blazeface-short, k=4: detection pass"]["coverage"] == 1.0
    assert rows["blazeface-short, k=4: detection pass"]["x_decode_cpu"] > 1.0
    # the command's own path: the video twice (worker processes on 2+ CPUs), its looked-at frames counted twice,
    # its time per copy
    command = next(r for name, r in rows.items() if name.startswith("extract-faces command, 2 videos"))
    single = rows["blazeface-short, k=4: extract_face_frames"]
    assert command["frames_checked"] == 2 * single["frames_checked"] and command["coverage"] == 1.0
    assert command["x_decode"] > 1.0 and command["x_decode_cpu"] > 1.0


def _large_and_small_face() -> np.ndarray:
    """A 640x360 frame of the bundled 720p face at half size, beside a 176x144 face (carphone) on the right."""
    from PIL import Image

    big = np.asarray(Image.fromarray(read_frames(bundled_video("Zhling_1280x720"), [0])[0]).resize((640, 360)))
    frame = np.full((360, 840, 3), 40, np.uint8)
    frame[:, :640] = big
    frame[20:164, 652:828] = read_frames(bundled_video("carphone_pristine"), [0])[0]
    return frame


def test_auto_finds_a_smaller_second_face_beside_a_large_one():
    """BlazeFace's short-range model finds the large face and not the small one; as a cascade the
    full-range model then never looked at the frame, so --faces all followed one of two people
    without a word. ``auto`` runs both BlazeFace models on every frame, the second adding the faces
    the first did not find (one row per face: the large face keeps the short-range box)."""
    frame = _large_and_small_face()
    auto = create_face_detector("auto")
    assert auto.every_frame == 2 and "every_frame=2" in repr(auto)  # faces.json tells such folders apart
    short_only = detect_faces(frame[None], auto.detectors[0])[0]
    assert len(short_only) == 1 and short_only[0, 2] < 640  # the short-range model: the large face only
    cascade = AutoFaceDetector(*auto.detectors, every_frame=1)
    assert len(cascade.detect_batch(frame[None])[0]) == 1  # the old cascade: one of two people
    (rows,) = auto.detect_batch(frame[None])
    assert len(rows) == 2
    assert np.array_equal(rows[0], short_only[0], equal_nan=True)  # the large face's row is the short-range model's
    assert rows[1, 0] > 640  # the small face, on the right


def test_added_faces_keeps_one_row_per_face():
    from dynsnip.data.faces.detectors import added_faces

    def row(x0, y0, x1, y1, score=0.9):
        return np.array([x0, y0, x1, y1, score] + [np.nan] * 10)

    found = np.stack([row(10, 10, 60, 60)])
    more = np.stack([row(12, 8, 58, 62), row(30, 30, 50, 50), row(100, 10, 130, 40), row(55, 55, 90, 90)])
    out = added_faces(found, more)
    # the same face (high IoU) and a box centred inside it are dropped; a face elsewhere and one
    # barely overlapping (IoU < 0.3, centre outside) are added
    assert [tuple(r[:4]) for r in out] == [(10, 10, 60, 60), (100, 10, 130, 40), (55, 55, 90, 90)]
    assert added_faces(np.zeros((0, 15)), more) is more and added_faces(found, np.zeros((0, 15))) is found
    with pytest.raises(ValueError, match="every_frame"):
        AutoFaceDetector(lambda f: found, lambda f: more, every_frame=3)


def test_auto_cascade_is_the_faster_cascade_by_name():
    cascade = create_face_detector("auto-cascade")
    assert cascade.every_frame == 1 and "every_frame" not in repr(cascade)
    assert [(d.model, d.min_score) for d in cascade.detectors[:2]] == [("short", 0.6), ("full", 0.7)]
    assert len(cascade.detect_batch(_large_and_small_face()[None])[0]) == 1  # one of the two people
