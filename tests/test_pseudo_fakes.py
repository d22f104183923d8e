"""Video pseudo-fakes (dynsnip.data.pseudo_fakes) and training with them (dynsnip.engine.pseudo_fakes)."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

from dynsnip.data.pseudo_fakes import MODES, PseudoFakeGenerator, crop_face_box
from dynsnip.engine.failures import FailedItem
from dynsnip.engine.pseudo_fakes import PseudoFakeCollate, pseudo_fake_clip
from project_scripts import load_script

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@pytest.fixture(scope="module")
def real_crops():
    """32 consecutive 48 px face crops of a real person (bundled footage, dlib)."""
    from dynsnip.data import bundled_video
    from dynsnip.demo.synthetic import face_footage

    return face_footage(bundled_video("carphone_pristine"), size=48, max_frames=32, detect_every=4).crops


def textured_frames(frames=8, height=40, width=56, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(20, 235, size=(frames, height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize("mode", MODES)
def test_same_seed_same_pseudo_fake_other_seed_another(mode):
    frames = textured_frames()
    gen = PseudoFakeGenerator(mode=mode, magnitude="strong")
    a, b, c = gen(frames, seed=5), gen(frames, seed=5), gen(frames, seed=6)
    assert np.array_equal(a.frames, b.frames) and np.array_equal(a.masks, b.masks)
    assert not np.array_equal(a.frames, c.frames)
    assert not np.array_equal(a.frames, frames)  # it did blend something


def test_modes_decide_what_changes_between_frames():
    frames = np.repeat(textured_frames(frames=1), 8, axis=0)  # a still clip: only the blend can change
    spatial = PseudoFakeGenerator(mode="spatial")(frames, seed=1)
    assert all(np.array_equal(spatial.frames[0], f) for f in spatial.frames)  # one blend for the whole clip
    for mode in ("temporal", "both"):
        out = PseudoFakeGenerator(mode=mode)(frames, seed=1)
        assert not np.array_equal(out.frames[0], out.frames[1]) and not np.allclose(out.masks[0], out.masks[1])
    with pytest.raises(ValueError, match="mode must be one of"):
        PseudoFakeGenerator(mode="swap")
    with pytest.raises(ValueError, match="magnitude must be one of"):
        PseudoFakeGenerator(magnitude="huge")


@pytest.mark.parametrize("mode", MODES)
def test_mask_stays_inside_the_face_box_and_fake_differs_only_there(mode):
    frames = textured_frames(frames=6, height=60, width=80)
    rng = np.random.default_rng(0)
    x0, y0 = rng.uniform(0, 30, 6), rng.uniform(0, 20, 6)
    boxes = np.stack([x0, y0, x0 + rng.uniform(20, 45, 6), y0 + rng.uniform(25, 38, 6)], 1)
    eyes_y = boxes[:, 1] + 0.4 * (boxes[:, 3] - boxes[:, 1])
    w = boxes[:, 2] - boxes[:, 0]
    cx = (boxes[:, 0] + boxes[:, 2]) / 2
    keypoints = np.stack([  # left eye, right eye, nose, mouth corners: a tilted face
        np.stack([cx - 0.2 * w, eyes_y - 2], 1), np.stack([cx + 0.2 * w, eyes_y + 2], 1),
        np.stack([cx, eyes_y + 0.2 * w], 1),
        np.stack([cx - 0.15 * w, eyes_y + 0.4 * w], 1), np.stack([cx + 0.15 * w, eyes_y + 0.4 * w], 1),
    ], 1)
    yy, xx = np.mgrid[0:60, 0:80] + 0.5
    for kp in (None, keypoints):
        for seed in range(5):
            out = PseudoFakeGenerator(mode=mode, magnitude="strong")(frames, boxes=boxes, keypoints=kp, seed=seed)
            for t, (bx0, by0, bx1, by1) in enumerate(boxes):
                inside = (xx >= bx0) & (xx <= bx1) & (yy >= by0) & (yy <= by1)
                support = out.masks[t] > 0
                assert support.any() and not (support & ~inside).any()
                # the pseudo-fake is the real frame, bit for bit, wherever the mask is 0
                assert np.array_equal(out.frames[t][~support], frames[t][~support])
                assert (out.frames[t][support] != frames[t][support]).any()
    # face crops without boxes: the face box is the middle 1/1.3 of the crop
    out = PseudoFakeGenerator(mode=mode)(frames[:, :52, :52], seed=0)
    bx0, by0, bx1, by1 = crop_face_box(52, 52)
    support = out.masks.max(axis=0) > 0
    assert not (support & ~((xx[:52, :52] >= bx0) & (xx[:52, :52] <= bx1) & (yy[:52, :52] >= by0)
                            & (yy[:52, :52] <= by1))).any()


def frame_statistics(frames: np.ndarray) -> np.ndarray:
    """Per frame: mean and std of each channel in the face box, mean absolute gradient."""
    x = frames.astype(np.float32)
    x0, y0, x1, y1 = np.round(crop_face_box(*frames.shape[1:3])).astype(int)
    face = x[:, y0:y1, x0:x1]
    grad = np.abs(np.diff(x, axis=1)).mean(axis=(1, 2, 3)) + np.abs(np.diff(x, axis=2)).mean(axis=(1, 2, 3))
    return np.concatenate([face.mean(axis=(1, 2)), face.std(axis=(1, 2)), grad[:, None]], axis=1)


def test_temporal_mode_keeps_every_frame_within_the_real_range(real_crops):
    """A frame-level statistic cannot tell a `temporal` pseudo-fake frame from the real frames:
    each lies within the range of the real clip's frames (widened by 20 % of it), for every
    frame position; the per-clip blend of `spatial` / `both` leaves it (the check can fail)."""
    real = frame_statistics(real_crops)
    lo, hi = real.min(axis=0), real.max(axis=0)

    def worst_excess(mode):
        excess = []
        for seed in range(12):
            fake = frame_statistics(PseudoFakeGenerator(mode=mode)(real_crops, seed=seed, snippet_len=4).frames)
            excess.append(np.maximum(lo - fake, fake - hi) / (hi - lo))
        return np.max(excess, axis=(0, 2))  # per frame position

    temporal = worst_excess("temporal")
    assert (temporal <= 0.2).all(), temporal  # every frame position, every statistic
    assert worst_excess("spatial").max() > 0.5 and worst_excess("both").max() > 0.5
    # ... and the temporal fakes do change from frame to frame more than the real clip does
    clip = PseudoFakeGenerator(mode="temporal")(real_crops, seed=0, snippet_len=4)
    mask = clip.masks > 0.5
    real_motion = np.abs(np.diff(real_crops.astype(np.float32), axis=0))[mask[1:]].mean()
    fake_motion = np.abs(np.diff(clip.frames.astype(np.float32), axis=0))[mask[1:]].mean()
    assert fake_motion > 1.1 * real_motion


def ks_statistic(a, b) -> float:
    """Two-sample Kolmogorov-Smirnov distance between empirical CDFs."""
    a, b = np.sort(np.ravel(a)), np.sort(np.ravel(b))
    grid = np.concatenate([a, b])
    return float(np.abs(np.searchsorted(a, grid, "right") / len(a) - np.searchsorted(b, grid, "right") / len(b)).max())


def test_temporal_twin_has_the_same_distribution_at_every_frame_and_only_jumps_differ():
    """The consistent twin (the real side of `temporal` training) and the pseudo-fake: same
    blend parameters' distribution at every frame, smooth vs jumping from frame to frame."""
    gen = PseudoFakeGenerator(mode="temporal")
    rng = np.random.default_rng(0)
    twin = [gen.draw(8, rng, snippet_len=4, twin=True) for _ in range(2000)]
    fake = [gen.draw(8, rng, snippet_len=4) for _ in range(2000)]
    for name in ("translate", "colour", "alpha", "feather"):
        a = np.stack([getattr(p, name) for p in twin])  # (N, F, ...)
        b = np.stack([getattr(p, name) for p in fake])
        for t in (0, 3, 6):
            assert ks_statistic(a[:, t], b[:, t]) < 0.05, (name, t)
        jump_twin = np.abs(np.diff(a[:, :4], axis=1)).mean()
        jump_fake = np.abs(np.diff(b[:, :4], axis=1)).mean()
        assert jump_fake > 4 * jump_twin, name


def test_collate_adds_a_pseudo_fake_per_real_clip_differing_only_inside_its_mask():
    torch.manual_seed(0)
    frames = textured_frames(frames=8, height=32, width=32)
    from dynsnip.data import frames_to_tensor

    real = frames_to_tensor(frames, MEAN, STD)
    fake_in_manifest = frames_to_tensor(textured_frames(frames=8, height=32, width=32, seed=1), MEAN, STD)
    collate = PseudoFakeCollate(PseudoFakeGenerator(mode="both"), MEAN, STD, snippet_len=4)
    failed = FailedItem(3, "broken", "corrupt", "truncated")
    (pixels, labels), failures = collate([(real, torch.tensor(0.0)), (fake_in_manifest, torch.tensor(1.0)), failed])
    assert failures == [failed]
    assert labels.tolist() == [0.0, 1.0, 1.0] and pixels.shape == (3, 3, 8, 32, 32)
    assert torch.equal(pixels[0], real) and torch.equal(pixels[1], fake_in_manifest)
    # the same generator on the same normalised clip, by seed
    again, masks = pseudo_fake_clip(real, PseudoFakeGenerator(mode="both"), MEAN, STD, snippet_len=4, seed=3)
    outside = (masks == 0).expand_as(again[0])
    assert torch.equal(again[:, outside], real[:, outside]) and not torch.equal(again, real)
    # temporal: the real clip is replaced by its consistent twin
    temporal = PseudoFakeCollate(PseudoFakeGenerator(mode="temporal"), MEAN, STD, snippet_len=4)
    (pixels, labels), _ = temporal([(real, torch.tensor(0.0))])
    assert labels.tolist() == [0.0, 1.0] and not torch.equal(pixels[0], real) and not torch.equal(pixels[0], pixels[1])


def write_real_manifest(root, videos=4, frames=12, size=24):
    rows = []
    for i in range(videos):
        folder = root / f"real_{i}"
        folder.mkdir(parents=True)
        for k, frame in enumerate(textured_frames(frames=frames, height=size, width=size, seed=i)):
            Image.fromarray(frame).save(folder / f"{k:06d}.png")
        rows.append({"path": folder.name, "label": "real", "split": "train"})
    path = root / "reals.csv"
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["path", "label", "split"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_train_on_real_videos_only_records_the_pseudo_fakes(tmp_path, capsys):
    from dynsnip.cli import main

    manifest = write_real_manifest(tmp_path / "faces")
    out = tmp_path / "run"
    code = main(["train", "--manifest", str(manifest), "--out", str(out), "--model", "dil_resnet18", "--no-pretrained",
                 "--model-arg", "channels=[8,16,32,64]", "--model-arg", "stem_width=8", "--batch-size", "2",
                 "--img-size", "24", "--num-snippets", "1", "--epochs", "1", "--workers", "0", "--no-progress",
                 "--pseudo-fakes", "temporal", "--pseudo-fake-magnitude", "strong"])
    assert code == 0, capsys.readouterr()
    recipe = json.loads((out / "recipe.json").read_text())
    assert (recipe["pseudo_fakes"], recipe["pseudo_fake_magnitude"]) == ("temporal", "strong")
    config = json.loads((out / "model" / "config.json").read_text())
    assert config["training"]["recipe"]["pseudo_fakes"] == "temporal"
    assert "`temporal` self-blended pseudo-fake (strong)" in (out / "model" / "README.md").read_text()
    history = json.loads((out / "history.json").read_text())
    assert np.isfinite(history[0]["train_loss"])
    from dynsnip.engine import Recipe

    with pytest.raises(ValueError, match="pseudo_fakes must be None or one of"):
        Recipe(pseudo_fakes="faceswap")


def test_pseudo_fake_pairs_is_a_fixed_evaluation_set():
    from dynsnip.data import frames_to_tensor
    from dynsnip.engine.pseudo_fakes import PseudoFakePairs

    clips = [(frames_to_tensor(textured_frames(frames=4, height=24, width=24, seed=i), MEAN, STD), torch.tensor(float(i == 2)))
             for i in range(3)]
    pairs = PseudoFakePairs(clips, PseudoFakeGenerator(mode="temporal"), MEAN, STD, snippet_len=4, seed=1)
    assert len(pairs) == 3 + 2  # a pseudo-fake for each of the two real clips
    assert [float(pairs[i][1]) for i in range(5)] == [0.0, 0.0, 1.0, 1.0, 1.0]
    assert torch.equal(pairs[3][0], pairs[3][0]) and not torch.equal(pairs[3][0], clips[0][0])
    assert pairs.item_info(4)["method"] == "pseudo-fake (temporal)" and pairs.item_info(4)["id"] == "1#pseudo-fake-1"


def test_pseudo_fakes_command_writes_picture_and_gif_and_never_overwrites(tmp_path, capsys):
    from dynsnip.cli import main

    faces = tmp_path / "faces"
    faces.mkdir()
    for k, frame in enumerate(textured_frames(frames=8, height=40, width=40)):
        Image.fromarray(frame).save(faces / f"{k:06d}.png")
    out = tmp_path / "preview"
    argv = ["pseudo-fakes", str(faces), "--out", str(out), "--mode", "temporal", "--size", "32", "--snippet", "1"]
    assert main(argv) == 0
    with Image.open(out / "pseudo_fakes.png") as sheet:
        assert sheet.size[1] == 4 * (32 + 2)  # rows: real, pseudo-fake, mask, difference
    with Image.open(out / "pseudo_fakes.gif") as gif:
        assert gif.n_frames == 8 and gif.size == (3 * 32, 32)
    assert json.loads((out / "pseudo_fakes.json").read_text())["generator"]["mode"] == "temporal"
    capsys.readouterr()
    assert main(argv) == 2 and "pass --overwrite" in capsys.readouterr().err
    assert main([*argv, "--overwrite"]) == 0
    assert main(["pseudo-fakes", str(tmp_path / "missing.mp4"), "--out", str(out)]) == 2
    # options checked before any work: a file as --out, a negative seed
    (tmp_path / "a_file").write_text("keep")
    assert main([*argv[:3], str(tmp_path / "a_file"), *argv[4:]]) == 2
    assert "is a file, expected a folder" in capsys.readouterr().err
    assert main([*argv, "--seed", "-1", "--overwrite"]) == 2
    assert "--seed must be a whole number >= 0, got -1" in capsys.readouterr().err
    # an input that fails is reported with its reason, exit 1 (as in explain)
    (tmp_path / "empty.mp4").write_bytes(b"")
    assert main(["pseudo-fakes", str(tmp_path / "empty.mp4"), "--out", str(tmp_path / "p2")]) == 1
    assert "corrupt: " in capsys.readouterr().err and "Traceback" not in capsys.readouterr().err


def test_gpu_training_script_runs_its_cpu_path_tiny(tmp_path):
    """benchmarks/train_pseudo_fakes.py (what benchmarks/gpu_pseudo_fakes.sh runs on a GPU) on
    a folder of real face-crop folders, tiny: it trains, validates on held-out videos and their
    pseudo-fakes and writes the hub-layout model with its card."""
    from dynsnip.hub.load import load_model

    script = load_script("benchmarks/train_pseudo_fakes.py")
    faces = tmp_path / "faces"
    for name, seed in (("alice", 0), ("bob", 1), ("carol", 2)):
        (faces / name).mkdir(parents=True)
        for k, frame in enumerate(textured_frames(frames=8, height=24, width=24, seed=seed)):
            Image.fromarray(frame).save(faces / name / f"{k:06d}.jpg")
    out = tmp_path / "gpu"
    argv = ["--faces", str(faces), "--out", str(out), "--val", "carol", "--model", "dil_resnet18", "--init", "random",
            "--model-arg", "channels=[8,16,32,64]", "--model-arg", "stem_width=8", "--img-size", "16", "--epochs", "2",
            "--repeats", "1", "--batch-size", "2", "--num-snippets", "1", "--test-num-snippets", "2", "--workers", "0",
            "--val-draws", "2", "--device", "cpu", "--mode", "temporal"]
    summary = script.main(argv)
    assert summary["epochs_run"] == 2 and summary["val_videos"] == [str(faces / "carol")]
    config = json.loads((out / "run" / "model" / "config.json").read_text())
    assert config["training"]["recipe"]["pseudo_fakes"] == "temporal"
    assert config["evaluation"][0]["overall"]["num_videos"] == 3  # the held-out video + 2 pseudo-fakes of it
    assert load_model(out / "run" / "model").pretrained_cfg["input_size"][-1] == 16
    with pytest.raises(SystemExit, match="exists"):
        script.main(argv)  # an earlier run is never overwritten
    with pytest.raises(SystemExit, match="no such folders"):
        script.main([*argv[:4], "--out", str(tmp_path / "other"), "--val", "dave"])


def test_benchmark_throughput_trains_each_setting_in_a_run_folder_of_its_own():
    """benchmarks/pseudo_fakes.py's throughput step trains four times (generator off / on, twice): each
    training gets a fresh run folder, since train() refuses to overwrite an earlier run's results (it
    failed on the second training when they shared one)."""
    script = load_script("benchmarks/pseudo_fakes.py", "pseudo_fakes_benchmark")
    rows = script.throughput(epochs=1, steps=1)
    assert [r["pseudo_fakes"] for r in rows] == ["off", "both", "off", "both"]
    for off, both in zip(rows[0::2], rows[1::2]):  # with the generator a step trains on each real clip and its pseudo-fake
        assert both["clips_trained_per_s"] == pytest.approx(2 * both["clips_read_per_s"], rel=1e-6)
        assert off["clips_trained_per_s"] == pytest.approx(off["clips_read_per_s"], rel=1e-6)


def test_the_preview_of_an_extract_faces_folder_shows_the_crops_training_cuts(tmp_path):
    """`dynsnip pseudo-fakes FOLDER` squashed each stored face region (both people of two_people in one
    312x153 region) into a square; it now shows what `train --pseudo-fakes` blends: the crop policy's crops
    of the folder's first sample face track."""
    from video_fixtures import two_people

    from dynsnip.cli import main
    from dynsnip.cli.pseudo_fakes import _face_crops
    from dynsnip.data.datasets import frame_sequence
    from dynsnip.data.faces.face_folder import FaceFolder

    assert main(["extract-faces", str(two_people()), "--out", str(tmp_path / "faces"), "--no-progress"]) == 0
    (folder_path,) = [p for p in (tmp_path / "faces").iterdir() if p.is_dir()]
    crops, fps = _face_crops(folder_path, 64, 8, 4)
    assert fps == json.loads((folder_path / "faces.json").read_text())["fps"] > 0  # the video's, for the GIF
    folder = FaceFolder.open(folder_path, frame_sequence(folder_path).paths)
    track = FaceFolder.sample_tracks(folder_path)[0]
    expected, _ = folder.clip_frames(np.arange(8).reshape(2, 4), (64, 64), "bilinear", track=track)
    assert crops.shape == (8, 64, 64, 3) and np.array_equal(crops, expected)
    with Image.open(frame_sequence(folder_path).paths[0]) as region:  # what was shown before: the whole region
        squashed = np.asarray(region.convert("RGB").resize((64, 64), Image.BILINEAR))
    assert np.abs(crops[0].astype(int) - squashed.astype(int)).mean() > 10
    # fewer frames than one snippet: the usage error, not a traceback
    assert main(["pseudo-fakes", str(folder_path), "--out", str(tmp_path / "pf"), "--max-frames", "3"]) == 2
