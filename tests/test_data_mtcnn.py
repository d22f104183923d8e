"""The package's own MTCNN: bundled weights, faces and keypoints on real frames, batching, `auto`."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from video_fixtures import LANDMARKS, faceless_frames, two_people

from dynsnip.data import bundled_video, read_frames
from dynsnip.data.faces.detectors import (
    AutoFaceDetector,
    DlibFaceDetector,
    Face,
    MtcnnFaceDetector,
    create_face_detector,
    detect_faces,
)
from dynsnip.data.faces.mtcnn import MTCNN, WEIGHTS_FILE


@pytest.fixture(scope="module")
def mtcnn():
    return MtcnnFaceDetector()


def inside(box, points):
    x0, y0, x1, y1 = box
    return all(x0 <= x < x1 and y0 <= y < y1 for x, y in points)


def test_bundled_weights_load_strictly_with_their_licence():
    from safetensors.torch import load_file

    state = load_file(str(WEIGHTS_FILE))
    assert {name.split(".")[0] for name in state} == {"pnet", "rnet", "onet"}
    missing, unexpected = MTCNN().load_state_dict(state, strict=False)
    assert not missing and not unexpected
    licence = (Path(WEIGHTS_FILE).parent / "LICENSE-facenet-pytorch.txt").read_text()
    assert "MIT License" in licence and "Timothy Esler" in licence
    notice = (Path(__file__).resolve().parent.parent / "NOTICE").read_text()
    assert "facenet-pytorch" in notice


@pytest.mark.parametrize(
    "name, index", [("carphone_pristine", 0), ("carphone_pristine", 60), ("carphone_pristine", 89), ("Zhling_1280x720", 10)]
)
def test_mtcnn_box_and_eyes_on_real_frames(mtcnn, name, index):
    frame = read_frames(bundled_video(name), [index])[0]
    rows = mtcnn(frame)
    assert rows.shape[1] == 15 and len(rows) >= 1
    areas = (rows[:, 2] - rows[:, 0]) * (rows[:, 3] - rows[:, 1])
    face = Face.from_row(rows[int(np.argmax(areas))])  # the largest face, as the pipeline picks it
    left_eye, right_eye, mouth = LANDMARKS[(name, index)]
    assert inside(face.box, [left_eye, right_eye, mouth])
    eye_distance = np.hypot(right_eye[0] - left_eye[0], right_eye[1] - left_eye[1])
    # the predicted eyes lie on the hand-marked eyes (within a fifth of the eye distance)
    assert np.hypot(*(face.keypoints[0] - left_eye)) < 0.2 * eye_distance
    assert np.hypot(*(face.keypoints[1] - right_eye)) < 0.2 * eye_distance
    assert face.keypoints[3:, 1].min() > face.keypoints[:2, 1].max()  # mouth below the eyes
    assert inside(face.box, face.keypoints)


def test_both_faces_of_the_two_person_clip(mtcnn):
    rows = mtcnn(read_frames(two_people(), [0])[0])
    assert len(rows) == 2
    for who in ("woman", "man"):
        assert sum(inside(r[:4], LANDMARKS[("two_people_320x192_test_vd_rc", who)]) for r in rows) == 1


def test_no_face_in_faceless_content(mtcnn):
    assert all(len(faces) == 0 for faces in detect_faces(np.stack(faceless_frames(4)), mtcnn))


def test_batched_detection_equals_one_frame_at_a_time(mtcnn):
    frames = read_frames(bundled_video("carphone_pristine"), [0, 30, 60, 90])
    batched = mtcnn.detect_batch(frames)
    single = [mtcnn(frame) for frame in frames]
    for a, b in zip(batched, single):
        np.testing.assert_allclose(a, b, atol=1e-3)


def test_tilted_head_found_by_mtcnn_where_dlib_misses():
    """A head tilted by 40 degrees (the carphone face rotated in the frame): the frontal HOG
    detector loses it, MTCNN does not, and `auto` takes MTCNN's box for that frame only."""
    from PIL import Image

    frame = read_frames(bundled_video("carphone_pristine"), [0])[0]
    tilted = np.asarray(Image.fromarray(frame).rotate(40, resample=Image.BICUBIC))
    dlib, mtcnn = DlibFaceDetector(), MtcnnFaceDetector()
    assert len(dlib(tilted)) == 0 and len(dlib(frame)) == 1
    found = mtcnn(tilted)
    assert len(found) >= 1
    centre = np.array(frame.shape[1::-1]) / 2
    face_centre = (found[0, :2] + found[0, 2:4]) / 2
    assert np.hypot(*(face_centre - centre)) < 40  # the rotated face, not a corner of the frame
    auto = AutoFaceDetector(dlib, mtcnn)
    upright, turned = auto.detect_batch(np.stack([frame, tilted]))
    assert np.isnan(upright[:, 5:]).all()  # dlib's row (no keypoints): dlib found this one
    np.testing.assert_allclose(turned, found, atol=1e-3)


def test_auto_runs_the_fallback_only_where_the_primary_missed():
    calls = []

    def primary(frame):
        return np.array([[0, 0, 10, 10, 1.0]]) if frame.mean() > 100 else np.zeros((0, 5))

    def fallback(frame):
        calls.append(frame.mean())
        return np.array([[1, 1, 5, 5, 0.9]])

    frames = np.stack([np.full((8, 8, 3), v, np.uint8) for v in (200, 50, 200, 60)])
    out = AutoFaceDetector(primary, fallback).detect_batch(frames)
    assert calls == [50, 60]
    assert [r[0, 2] for r in out] == [10, 5, 10, 5]


def test_detector_names():
    assert isinstance(create_face_detector("auto"), AutoFaceDetector)
    assert isinstance(create_face_detector("mtcnn", detect_short_side=320), MtcnnFaceDetector)
    assert create_face_detector("none") is None
    with pytest.raises(ValueError, match="expected one of"):
        create_face_detector("retinaface")


def test_mtcnn_follows_its_device():
    assert MtcnnFaceDetector(device="cpu").network.pnet.conv1.weight.device == torch.device("cpu")
