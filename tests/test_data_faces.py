"""Face detection on real frames, box tracking / smoothing / margins, crops, the clip pipeline."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from video_fixtures import LANDMARKS, carphone, faceless_video, two_people  # noqa: F401

from dynsnip.data import (
    DlibFaceDetector,
    FaceClipLoader,
    NoFaceError,
    bundled_video,
    bundled_videos,
    crop_and_resize,
    fill_missing_boxes,
    frames_to_tensor,
    random_horizontal_flip,
    read_frames,
    sample_snippets,
    smooth_boxes,
    snippet_face_boxes,
    square_crop_box,
    track_face,
)

NAN = [np.nan] * 4


@pytest.fixture(scope="module")
def detector():
    return DlibFaceDetector()


def contains(box, points):
    x0, y0, x1, y1 = box
    return all(x0 <= x < x1 and y0 <= y < y1 for x, y in points)


@pytest.mark.parametrize(
    "name, index", [("carphone_pristine", 0), ("carphone_pristine", 60), ("carphone_pristine", 89), ("Zhling_1280x720", 10)]
)
def test_dlib_box_covers_the_face_on_real_frames(detector, name, index):
    frame = read_frames(bundled_video(name), [index])[0]
    faces = detector(frame)
    assert faces.shape == (1, 5)  # exactly one face, no false positive
    box = faces[0, :4]
    points = LANDMARKS[(name, index)]
    assert contains(box, points)
    eye_distance = np.hypot(points[1][0] - points[0][0], points[1][1] - points[0][1])
    assert 1.5 * eye_distance < box[2] - box[0] < 4 * eye_distance  # face-sized, not the whole frame


def test_both_faces_found_in_a_two_person_frame(detector):
    frame = read_frames(two_people(), [0])[0]
    faces = detector(frame)
    assert len(faces) == 2
    woman = [f for f in faces if contains(f[:4], LANDMARKS[("two_people_320x192_test_vd_rc", "woman")])]
    man = [f for f in faces if contains(f[:4], LANDMARKS[("two_people_320x192_test_vd_rc", "man")])]
    assert len(woman) == 1 and len(man) == 1


def test_loader_pickles_for_dataloader_workers():
    import pickle

    from dynsnip.data import BlazeFaceDetector

    loader = pickle.loads(pickle.dumps(FaceClipLoader(num_snippets=1, size=(16, 16))))
    frame = read_frames(bundled_video("carphone_pristine"), [0])[0]
    # auto: the first detector's rows (BlazeFace short range) where it finds a face
    assert np.array_equal(loader.face_detector(frame), BlazeFaceDetector("short", min_score=0.6)(frame), equal_nan=True)


def test_detector_finds_no_face_in_faceless_content(detector):
    from video_fixtures import faceless_frames

    assert all(len(detector(frame)) == 0 for frame in faceless_frames(3))


def test_track_face_follows_one_person_and_marks_gaps():
    a, b = [10, 10, 50, 50], [100, 10, 160, 70]  # b is larger
    detections = [np.array([a]), np.array([b, [12, 11, 52, 51]]), np.zeros((0, 4)), np.array([b])]
    tracked = track_face(detections)
    assert tracked[0].tolist() == a and tracked[1].tolist() == [12, 11, 52, 51]  # stays on a
    assert np.isnan(tracked[2]).all() and np.isnan(tracked[3]).all()  # a is gone: gap, not b
    assert track_face(detections, max_gap=1)[3].tolist() == b  # after a 1-frame gap, b is taken


def test_snippet_boxes_follow_the_largest_face_and_average_it():
    small, big = [0, 0, 40, 40], [100, 0, 160, 60]
    detections = [
        np.array([small]), np.array([small, big]), np.array([small, [102, 2, 162, 62]]), np.array([small]),
        np.zeros((0, 5)), np.zeros((0, 5)), np.zeros((0, 5)), np.zeros((0, 5)),
    ]
    boxes = snippet_face_boxes(detections, snippet_len=4)
    assert boxes[0].tolist() == [101, 1, 161, 61]  # the big face (frames 2-3) averaged, small ignored
    assert np.isnan(boxes[1]).all()


def test_fill_and_smooth_boxes():
    boxes = np.array([NAN, [0, 0, 10, 10], NAN, NAN, [20, 0, 30, 10]], dtype=float)
    filled = fill_missing_boxes(boxes)
    assert filled[:, 0].tolist() == [0, 0, 0, 20, 20]  # nearest found row, earlier on ties
    smoothed = smooth_boxes(np.array([[0, 0, 10, 10], [4, 0, 14, 10], [8, 0, 18, 10]], dtype=float), 3)
    assert smoothed[:, 0].tolist() == [2, 4, 6]
    with pytest.raises(ValueError, match="no face"):
        fill_missing_boxes(np.array([NAN]))


def test_square_crop_box_margin_and_frame_borders():
    assert square_crop_box([40, 40, 60, 60], (200, 100), margin=1.3) == (37, 37, 63, 63)
    assert square_crop_box([0, 0, 20, 30], (200, 100), margin=2.0) == (0, 0, 60, 60)  # shifted inside
    assert square_crop_box([150, 10, 200, 90], (200, 100), margin=1.3) == (100, 0, 200, 100)  # shrunk to 100


def test_crop_resize_and_normalise():
    frame = np.zeros((20, 30, 3), np.uint8)
    frame[5:15, 10:20] = 255  # white square
    crops = crop_and_resize(frame[None], [(10, 5, 20, 15)], (4, 4), "nearest")
    assert (crops == 255).all()
    pixels = frames_to_tensor(np.stack([crops[0], np.zeros_like(crops[0])]), mean=(0.5,) * 3, std=(0.25,) * 3)
    assert pixels.shape == (3, 2, 4, 4)
    assert torch.allclose(pixels[:, 0], torch.full((3, 4, 4), 2.0))
    assert torch.allclose(pixels[:, 1], torch.full((3, 4, 4), -2.0))
    clip = torch.arange(12.0).reshape(1, 2, 2, 3)
    assert torch.equal(random_horizontal_flip(clip, p=1.0), clip.flip(-1))
    assert torch.equal(random_horizontal_flip(clip, p=0.0), clip)


def test_bundled_videos_are_real_face_clips():
    names = [p.name for p in bundled_videos()]
    assert names == ["Zhling_1280x720.mp4", "carphone_pristine.mp4", "two_people_320x192_test_vd_rc.mp4"]
    with pytest.raises(FileNotFoundError, match="available"):
        bundled_video("foreman")


def test_face_clip_from_a_real_video():
    loader = FaceClipLoader(num_snippets=2, snippet_len=4, size=(64, 64))
    clip = loader(carphone())
    assert torch.equal(clip.frame_indices, sample_snippets(120, 2, 4))
    assert clip.face_found.tolist() == [True, True]
    assert clip.num_frames == 120 and clip.fps == pytest.approx(29.97, abs=0.01)
    assert clip.timestamps[1, 0].item() == pytest.approx(clip.frame_indices[1, 0].item() * 1001 / 30000)
    # snippets are frames 28-31 and 88-91; each crop covers the face hand-marked in that snippet
    assert clip.frame_indices[:, 1].tolist() == [29, 89]
    assert contains(clip.crop_boxes[0].tolist(), LANDMARKS[("carphone_pristine", 29)])
    assert contains(clip.crop_boxes[1].tolist(), LANDMARKS[("carphone_pristine", 89)])
    frames = clip.frame_indices.flatten().tolist()
    # pixels: the crop of the first frame, resized and normalised with the ImageNet statistics
    first = read_frames(carphone(), [frames[0]])[0]
    expected = frames_to_tensor(
        crop_and_resize(first[None], [clip.crop_boxes[0].tolist()], (64, 64), "bilinear"),
        loader.mean, loader.std,
    )
    assert torch.allclose(clip.pixels[:, :1], expected)


def test_two_people_clip_keeps_to_one_face():
    clip = FaceClipLoader(num_snippets=4, size=(32, 32))(two_people())
    for box in clip.crop_boxes.tolist():  # the larger face (the woman), never a box between both
        assert contains(box, LANDMARKS[("two_people_320x192_test_vd_rc", "woman")])
        assert not contains(box, LANDMARKS[("two_people_320x192_test_vd_rc", "man")][:1])


def test_no_face_raises(faceless_video):
    with pytest.raises(NoFaceError, match="no face found in any of the 8 sampled frames") as err:
        FaceClipLoader(num_snippets=2, size=(32, 32), detect_every=1)(faceless_video)
    assert err.value.reason == "no_face"
    for advice in ("turned or tilted head", "--face-detector mtcnn", "--detect-size"):  # pose, then size
        assert advice in str(err.value)


def test_face_detector_none_resizes_whole_frames(faceless_video):
    clip = FaceClipLoader(num_snippets=2, size=(32, 40), face_detector="none")(faceless_video)
    assert clip.crop_boxes.tolist() == [[0, 0, 160, 128]] * 2
    assert clip.pixels.shape == (3, 8, 32, 40)


def test_training_loader_flips_whole_clips():
    loader = FaceClipLoader(num_snippets=2, size=(32, 32), train=True, hflip_prob=1.0, face_detector="none")
    plain = FaceClipLoader(num_snippets=2, size=(32, 32), train=True, hflip_prob=0.0, face_detector="none")
    for seed in range(4):  # the same draws of the snippets' offsets, then the flip (drawn whatever its p)
        flipped = loader(two_people(), generator=torch.Generator().manual_seed(seed))
        same = plain(two_people(), generator=torch.Generator().manual_seed(seed))
        assert torch.equal(flipped.frame_indices, same.frame_indices)
        assert torch.allclose(flipped.pixels, same.pixels.flip(-1))
        assert not torch.allclose(flipped.pixels, same.pixels)


def test_working_scale_downsamples_to_the_short_side_and_caps_upsampling():
    from dynsnip.data.faces.detectors import working_scale

    assert working_scale((720, 1280), 480, 2.0) == pytest.approx(480 / 720)  # large frames: to the short side
    assert working_scale((144, 176), 480, 2.0) == 2.0  # small frames: capped (not 3.33x)
    assert working_scale((144, 176), 480, None) == pytest.approx(480 / 144)
    assert working_scale((300, 400), 480, 2.0) == pytest.approx(1.6)  # under the cap: to the short side
    assert working_scale((144, 176), None, 2.0) == 1.0  # native resolution
    # the cap changes what dlib runs on: the boxes stay in frame pixels and on the face
    frame = read_frames(bundled_video("carphone_pristine"), [60])[0]
    capped, uncapped = DlibFaceDetector()(frame), DlibFaceDetector(max_upscale=None)(frame)
    assert len(capped) == len(uncapped) == 1
    assert np.abs(capped[0, :4] - uncapped[0, :4]).max() < 0.2 * (uncapped[0, 2] - uncapped[0, 0])
