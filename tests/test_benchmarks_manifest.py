"""``dynsnip manifest`` / ``dynsnip.data.benchmarks`` on miniature trees of every layout.

Each tree links a bundled real clip under the names the dataset uses (the content does not
matter to a manifest, only names, folders and list files do) and is checked row by row.
"""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest

from dynsnip.cli import main
from dynsnip.data import bundled_video
from dynsnip.data.benchmarks import LayoutError, build_manifest, official_splits
from dynsnip.data.benchmarks.ffpp import SPLITS_DIR
from dynsnip.data.manifest import read_manifest

CLIP = bundled_video("carphone_pristine")
FFPP_TEST_PAIR = ("953", "974")   # the first pair of the official test.json
FFPP_TRAIN_PAIR = ("071", "054")  # the first pair of the official train.json
FFPP_VAL_PAIR = ("720", "672")    # the first pair of the official val.json


def link(path: Path, target: Path = CLIP) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, path)
    return path


def rows_of(csv_path: Path) -> dict[str, dict[str, str]]:
    with csv_path.open(newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == ["path", "label", "split", "method", "source", "dataset"]
        return {row["path"]: row for row in reader}


def ffpp_tree(root: Path, compression: str = "c23", methods=("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures")):
    for a, b in (FFPP_TEST_PAIR, FFPP_TRAIN_PAIR, FFPP_VAL_PAIR):
        for vid in (a, b):
            link(root / f"original_sequences/youtube/{compression}/videos/{vid}.mp4")
        for method in methods:
            for name in (f"{a}_{b}", f"{b}_{a}"):
                link(root / f"manipulated_sequences/{method}/{compression}/videos/{name}.mp4")
    return root


def test_bundled_split_files_are_the_official_ones():
    splits = official_splits()
    assert [len(splits[s]) for s in ("train", "val", "test")] == [360, 70, 70]
    ids = [v for pairs in splits.values() for pair in pairs for v in pair]
    assert sorted(ids) == [f"{i:03d}" for i in range(1000)]
    assert splits["test"][0] == FFPP_TEST_PAIR and splits["train"][0] == FFPP_TRAIN_PAIR
    assert splits["val"][0] == FFPP_VAL_PAIR
    licence = (SPLITS_DIR / "LICENSE").read_text(encoding="utf-8")
    assert "Permission is hereby granted" in licence and "Rössler" in licence


def test_ffpp_rows_pairs_sources_and_missing(tmp_path, capsys):
    root = ffpp_tree(tmp_path / "ffpp")
    out = tmp_path / "ffpp.csv"
    code = main(["manifest", "ffpp", str(root), "--out", str(out)])
    assert code == 1  # most of the 1000 + 4000 videos are missing: reported, manifest still written
    printed = capsys.readouterr().out
    lines = [line.split() for line in printed.splitlines()]
    for group in ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures"):  # 1000 expected, 6 found, 994 missing
        assert [line[1:4] for line in lines if line and line[0] == group] == [["1000", "6", "994"]]
    rows = rows_of(out)
    assert len(rows) == 6 + 4 * 6
    real = "ffpp/original_sequences/youtube/c23/videos/{}.mp4"
    fake = "ffpp/manipulated_sequences/{}/c23/videos/{}.mp4"
    for split, (a, b) in (("test", FFPP_TEST_PAIR), ("train", FFPP_TRAIN_PAIR), ("val", FFPP_VAL_PAIR)):
        for vid in (a, b):
            assert rows[real.format(vid)] == {"path": real.format(vid), "label": "0", "split": split,
                                              "method": "", "source": "", "dataset": "ffpp:c23"}
        for method in ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures"):
            for target, source in ((a, b), (b, a)):
                row = rows[fake.format(method, f"{target}_{source}")]
                assert (row["label"], row["split"], row["method"]) == ("1", split, method)
                assert row["source"] == real.format(target)  # the target's real video, as written above
    # the test pair 953/974 and its fakes land in test, nowhere else
    assert {r["split"] for p, r in rows.items() if "953" in p or "974" in p} == {"test"}
    entries = read_manifest(out, split="test")  # the format train / evaluate read
    assert len(entries) == 2 + 8 and {e.method for e in entries if e.label == 1} == {
        "Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures"}
    assert all(e.path.is_file() for e in entries)


def test_ffpp_missing_videos_named_and_counted(tmp_path):
    root = ffpp_tree(tmp_path / "ffpp", methods=("Deepfakes",))
    (root / "original_sequences/youtube/c23/videos/953.mp4").unlink()
    manifest = build_manifest("ffpp", root, methods=["Deepfakes"])
    real, deepfakes = manifest.inventory
    assert (real.expected, real.found, deepfakes.expected, deepfakes.found) == (1000, 5, 1000, 6)
    assert "original_sequences/youtube/c23/videos/953.mp4" in real.missing
    source_of = {r.path.name: r.source for r in manifest.rows}
    assert source_of["953_974.mp4"] is None and source_of["974_953.mp4"].name == "974.mp4"


def test_ffpp_not_a_root_and_missing_method(tmp_path, capsys):
    out = tmp_path / "x.csv"
    (tmp_path / "empty").mkdir()
    assert main(["manifest", "ffpp", str(tmp_path / "empty"), "--out", str(out)]) == 2
    assert "original_sequences/youtube/c23/videos is missing" in capsys.readouterr().err
    assert not out.exists()
    root = ffpp_tree(tmp_path / "ffpp", methods=("Deepfakes",))
    assert main(["manifest", "ffpp", str(root), "--out", str(out), "--methods", "Deepfakes,FaceShifter"]) == 2
    assert "manipulated_sequences/FaceShifter/c23/videos is missing" in capsys.readouterr().err
    assert not out.exists()
    with pytest.raises(LayoutError, match="c40"):
        build_manifest("ffpp", root, compression="c40")


def test_ffpp_deepfakedetection(tmp_path):
    root = tmp_path / "ffpp"
    link(root / "original_sequences/youtube/c23/videos/953.mp4")
    link(root / "original_sequences/actors/c23/videos/01__kitchen_pan.mp4")
    link(root / "manipulated_sequences/DeepFakeDetection/c23/videos/01_02__kitchen_pan__ABCDEFGH.mp4")
    rows = {r.path.name: r for r in build_manifest("ffpp", root, methods=["DeepFakeDetection"]).rows}
    fake = rows["01_02__kitchen_pan__ABCDEFGH.mp4"]
    assert (fake.label, fake.split, fake.method, fake.source.name) == (1, "test", "DeepFakeDetection",
                                                                      "01__kitchen_pan.mp4")
    assert (rows["01__kitchen_pan.mp4"].label, rows["953.mp4"].split) == (0, "test")
    assert (rows["01__kitchen_pan.mp4"].method, rows["953.mp4"].method) == ("actors", "")  # DFD's reals, marked


def test_never_overwrites_without_flag(tmp_path, capsys):
    root = ffpp_tree(tmp_path / "ffpp")
    out = tmp_path / "ffpp.csv"
    out.write_text("mine\n")
    assert main(["manifest", "ffpp", str(root), "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err and out.read_text() == "mine\n"
    assert main(["manifest", "ffpp", str(root), "--out", str(out), "--overwrite"]) == 1
    assert len(rows_of(out)) == 30
    assert main(["manifest", "celebdf", str(root), "--out", str(tmp_path / "c.csv"), "--compression", "c40"]) == 2
    assert "applies to ffpp" in capsys.readouterr().err


def celebdf_tree(root: Path) -> Path:
    for name in ("Celeb-real/id0_0000.mp4", "Celeb-real/id0_0001.mp4", "Celeb-real/id1_0000.mp4",
                 "Celeb-real/id2_0000.mp4", "YouTube-real/00170.mp4", "YouTube-real/00171.mp4",
                 "Celeb-synthesis/id0_id1_0000.mp4", "Celeb-synthesis/id0_id2_0001.mp4",
                 "Celeb-synthesis/id1_id0_0000.mp4", "Celeb-synthesis/id2_id1_0000.mp4"):
        link(root / name)
    (root / "List_of_testing_videos.txt").write_text(
        "1 YouTube-real/00170.mp4\n0 Celeb-synthesis/id0_id1_0000.mp4\n1 Celeb-real/id0_0000.mp4\n"
        "0 Celeb-synthesis/id9_id8_0000.mp4\n"
    )
    return root


def test_celebdf_label_inversion_splits_and_sources(tmp_path, capsys):
    root = celebdf_tree(tmp_path / "celeb")
    out = tmp_path / "celeb.csv"
    assert main(["manifest", "celebdf", str(root), "--out", str(out), "--val-fraction", "0"]) == 1  # id9_id8 missing
    assert "Celeb-synthesis/id9_id8_0000.mp4" in capsys.readouterr().out
    rows = rows_of(out)
    # the list's "1" (real) is label 0, its "0" (fake) is label 1
    assert (rows["celeb/YouTube-real/00170.mp4"]["label"], rows["celeb/YouTube-real/00170.mp4"]["split"]) == ("0", "test")
    assert (rows["celeb/Celeb-real/id0_0000.mp4"]["label"], rows["celeb/Celeb-real/id0_0000.mp4"]["split"]) == ("0", "test")
    fake = rows["celeb/Celeb-synthesis/id0_id1_0000.mp4"]
    assert (fake["label"], fake["split"], fake["method"], fake["source"]) == (
        "1", "test", "Celeb-synthesis", "celeb/Celeb-real/id0_0000.mp4")
    assert rows["celeb/Celeb-synthesis/id0_id2_0001.mp4"]["source"] == "celeb/Celeb-real/id0_0001.mp4"
    assert {p for p, r in rows.items() if r["split"] == "test"} == {
        "celeb/YouTube-real/00170.mp4", "celeb/Celeb-real/id0_0000.mp4", "celeb/Celeb-synthesis/id0_id1_0000.mp4"}
    assert all(r["split"] == "train" for p, r in rows.items() if r["split"] != "test") and len(rows) == 10
    # folders list no names: the shortfall against the published v2 counts is what is reported
    inventory = {i.group: i for i in build_manifest("celebdf", root).inventory}
    assert [(inventory[g].found, inventory[g].num_missing) for g in ("Celeb-real", "YouTube-real", "Celeb-synthesis")] == [
        (4, 586), (2, 298), (4, 5635)]
    assert (inventory["test list"].expected, inventory["test list"].num_missing) == (518, 515)


def test_celebdf_validation_never_splits_an_identity(tmp_path):
    root = celebdf_tree(tmp_path / "celeb")
    for seed in range(6):
        rows = build_manifest("celebdf", root, val_fraction=0.4, seed=seed).rows
        val = [r for r in rows if r.split == "val"]
        assert val, "a 0.4 validation share moves at least one identity"
        identity = {r.path.stem.split("_")[0] if r.path.parent.name != "YouTube-real" else r.path.stem
                    for r in val}
        for r in rows:
            if r.split == "train":
                key = r.path.stem.split("_")[0] if r.path.parent.name != "YouTube-real" else r.path.stem
                assert key not in identity, (seed, r.path)
        assert {r.path.name for r in rows if r.split == "test"} == {"00170.mp4", "id0_0000.mp4", "id0_id1_0000.mp4"}


def test_celebdf_list_that_contradicts_a_folder_is_refused(tmp_path):
    root = celebdf_tree(tmp_path / "celeb")
    (root / "List_of_testing_videos.txt").write_text("1 Celeb-synthesis/id0_id1_0000.mp4\n")  # "real" fake
    with pytest.raises(LayoutError, match="1 = real"):
        build_manifest("celebdf", root)
    (root / "List_of_testing_videos.txt").unlink()
    with pytest.raises(LayoutError, match="List_of_testing_videos.txt is missing"):
        build_manifest("celebdf", root)


def test_dfdc_parts_test_set_and_preview(tmp_path):
    root = tmp_path / "dfdc"
    part0, part1 = root / "dfdc_train_part_0", root / "dfdc_train_part_1"
    for name in ("aaaaaaaaaa.mp4", "bbbbbbbbbb.mp4", "cccccccccc.mp4"):
        link(part0 / name)
    (part0 / "metadata.json").write_text(json.dumps({
        "aaaaaaaaaa.mp4": {"label": "REAL", "split": "train", "original": None},
        "bbbbbbbbbb.mp4": {"label": "FAKE", "split": "train", "original": "aaaaaaaaaa.mp4"},
        "cccccccccc.mp4": {"label": "FAKE", "split": "train", "original": "aaaaaaaaaa.mp4"},
        "dddddddddd.mp4": {"label": "FAKE", "split": "train", "original": "aaaaaaaaaa.mp4"},  # not on disk
    }))
    link(part1 / "eeeeeeeeee.mp4")
    (part1 / "metadata.json").write_text(json.dumps({"eeeeeeeeee.mp4": {"label": "REAL", "split": "train", "original": None}}))
    for name in ("t1.mp4", "t2.mp4"):
        link(root / "test/videos" / name)
    (root / "test/labels.csv").write_text("filename,label\nt1.mp4,1\nt2.mp4,0\n")
    manifest = build_manifest("dfdc", root, val_fraction=0.0)
    rows = {r.path.name: r for r in manifest.rows}
    assert (rows["bbbbbbbbbb.mp4"].label, rows["bbbbbbbbbb.mp4"].source, rows["bbbbbbbbbb.mp4"].method) == (
        1, part0 / "aaaaaaaaaa.mp4", "DFDC")
    assert (rows["aaaaaaaaaa.mp4"].label, rows["aaaaaaaaaa.mp4"].split, rows["eeeeeeeeee.mp4"].split) == (0, "train", "train")
    assert (rows["t1.mp4"].label, rows["t1.mp4"].split, rows["t2.mp4"].label, rows["t2.mp4"].split) == (1, "test", 0, "test")
    assert "dddddddddd.mp4" not in rows and manifest.inventory[0].missing == ["dfdc_train_part_0/dddddddddd.mp4"]
    # a real video and its fakes move to val together
    for seed in range(4):
        val = {r.path.name for r in build_manifest("dfdc", root, val_fraction=0.5, seed=seed).rows if r.split == "val"}
        assert val in ({"aaaaaaaaaa.mp4", "bbbbbbbbbb.mp4", "cccccccccc.mp4"}, {"eeeeeeeeee.mp4"})
    out = tmp_path / "dfdc.csv"
    manifest.write(out)
    assert rows_of(out)["dfdc/dfdc_train_part_0/cccccccccc.mp4"]["source"] == "dfdc/dfdc_train_part_0/aaaaaaaaaa.mp4"

    preview = tmp_path / "preview"
    link(preview / "original_videos/1/1_A_001.mp4")
    link(preview / "method_A/1/1_A_001_0.mp4")
    (preview / "dataset.json").write_text(json.dumps({
        "original_videos/1/1_A_001.mp4": {"label": "real", "set": "train"},
        "method_A/1/1_A_001_0.mp4": {"label": "fake", "set": "test"}}))
    rows = {r.path.name: r for r in build_manifest("dfdc", preview).rows}
    assert (rows["1_A_001.mp4"].label, rows["1_A_001.mp4"].split) == (0, "train")
    assert (rows["1_A_001_0.mp4"].label, rows["1_A_001_0.mp4"].split, rows["1_A_001_0.mp4"].method) == (1, "test", "method_A")
    with pytest.raises(LayoutError, match="metadata.json"):
        build_manifest("dfdc", tmp_path / "preview" / "method_A")


def test_deeperforensics_with_ffpp_reals(tmp_path, capsys):
    root, ffpp = tmp_path / "dfo", tmp_path / "ffpp"
    link(root / "manipulated_videos/end_to_end/000_M004.mp4")
    link(root / "manipulated_videos/end_to_end/001_W101.mp4")
    link(ffpp / "original_sequences/youtube/c23/videos/000.mp4")
    link(ffpp / "original_sequences/youtube/c23/videos/001.mp4")
    (root / "lists/splits").mkdir(parents=True)
    (root / "lists/splits/train.txt").write_text("000_M004.mp4\n")
    (root / "lists/splits/val.txt").write_text("")
    (root / "lists/splits/test.txt").write_text("001_W101\n002_M005\n")
    out = tmp_path / "dfo.csv"
    assert main(["manifest", "deeperforensics", str(root), "--out", str(out)]) == 2
    assert "--ffpp-root" in capsys.readouterr().err
    assert main(["manifest", "deeperforensics", str(root), "--ffpp-root", str(ffpp), "--out", str(out)]) == 1
    rows = rows_of(out)
    assert rows["dfo/manipulated_videos/end_to_end/000_M004.mp4"] == {
        "path": "dfo/manipulated_videos/end_to_end/000_M004.mp4", "label": "1", "split": "train",
        "method": "DeeperForensics-end_to_end", "source": "ffpp/original_sequences/youtube/c23/videos/000.mp4",
        "dataset": "deeperforensics:end_to_end"}
    assert (rows["ffpp/original_sequences/youtube/c23/videos/001.mp4"]["label"],
            rows["ffpp/original_sequences/youtube/c23/videos/001.mp4"]["split"]) == ("0", "test")
    assert len(rows) == 4  # 002 real and fake missing
    with pytest.raises(LayoutError, match="manipulated_videos/end_to_end_level_5 is missing"):
        build_manifest("deeperforensics", root, ffpp_root=ffpp, variant="end_to_end_level_5")


def test_wilddeepfake_frame_folders(tmp_path):
    root = tmp_path / "wild"
    layout = {"real_train": ["1/real/0", "1/real/1", "2/real/0"], "fake_train": ["3/fake/0"],
              "real_test": ["4/real/0"], "fake_test": ["5/fake/0", "5/fake/1"]}
    for folder, sequences in layout.items():
        for seq in sequences:
            (root / folder / seq).mkdir(parents=True)
            for i in range(3):
                (root / folder / seq / f"{i}.png").write_bytes(b"")
    manifest = build_manifest("wilddeepfake", root, val_fraction=0.0)
    rows = {r.path.relative_to(root).as_posix(): r for r in manifest.rows}
    assert len(rows) == 7
    assert (rows["real_train/1/real/0"].label, rows["real_train/1/real/0"].split) == (0, "train")
    assert (rows["fake_test/5/fake/1"].label, rows["fake_test/5/fake/1"].split,
            rows["fake_test/5/fake/1"].method) == (1, "test", "WildDeepfake")
    for seed in range(5):
        val = [r for r in build_manifest("wilddeepfake", root, val_fraction=0.5, seed=seed).rows if r.split == "val"]
        folders = {r.path.relative_to(root).parts[:2] for r in val}
        assert ("real_train", "1") not in folders or len([r for r in val if r.path.parts[-3] == "1"]) == 2
    (root / "fake_test").rename(root / "elsewhere")
    with pytest.raises(LayoutError, match="fake_test is missing"):
        build_manifest("wilddeepfake", root)
    (root / "fake_test").mkdir()
    (root / "fake_test/5.tar.gz").write_bytes(b"")
    with pytest.raises(LayoutError, match="extract"):
        build_manifest("wilddeepfake", root)


def test_empty_download_writes_nothing_and_shows_what_is_missing(tmp_path, capsys):
    root = tmp_path / "ffpp"
    (root / "original_sequences/youtube/c40/videos").mkdir(parents=True)
    (root / "manipulated_sequences/Deepfakes/c40/videos").mkdir(parents=True)
    out = tmp_path / "m.csv"
    assert main(["manifest", "ffpp", str(root), "--compression", "c40", "--methods", "Deepfakes", "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert "no videos found" in captured.err and "original_sequences/youtube/c40/videos/" in captured.out
    assert not out.exists() and not list(tmp_path.glob(".m.csv*"))


def wild_tree(root: Path, layout: dict[str, list[str]]) -> Path:
    for folder, sequences in layout.items():
        for seq in sequences:
            (root / folder / seq).mkdir(parents=True)
            for i in range(3):
                (root / folder / seq / f"{i}.png").write_bytes(b"")
    return root


def test_wilddeepfake_extraction_wrapper_folder_is_not_taken_for_one_video(tmp_path):
    """real_train/extracted/<video>/...: the wrapper holds every video of the class; val is drawn by video."""
    root = wild_tree(tmp_path / "wild", {
        "real_train": [f"extracted/{v}/real/0" for v in (1, 2, 3, 4)],
        "fake_train": [f"extracted/{v}/fake/0" for v in (5, 6, 7, 8)],
        "real_test": ["extracted/9/real/0"], "fake_test": ["extracted/10/fake/0"]})
    for seed in range(5):
        manifest = build_manifest("wilddeepfake", root, val_fraction=0.25, seed=seed)
        train = [r for r in manifest.rows if r.split == "train"]
        val = [r for r in manifest.rows if r.split == "val"]
        assert {r.label for r in train} == {0, 1}, seed  # never a class's whole training set in val
        assert len(val) == 2, seed  # 0.25 of 8 videos
        assert "2 of 8 moved (25.0%" in manifest.notes[0]


def test_validation_never_takes_a_class_whole():
    from dynsnip.data.benchmarks.layout import BenchmarkRow, assign_val_by_group

    rows = [BenchmarkRow(Path(f"r{i}"), 0, "train") for i in range(6)] + [
        BenchmarkRow(Path(f"f{i}"), 1, "train") for i in range(6)]
    for seed in range(5):  # one group per class: no group may move
        assert assign_val_by_group(rows, lambda r: r.label, 0.5, seed) == rows
    many = rows + [BenchmarkRow(Path(f"g{i}"), 1, "train") for i in range(8)]  # 20 rows: 6 real, 14 fake
    for seed in range(5):
        moved = [r for r in assign_val_by_group(many, lambda r: r.path.name[0], 0.3, seed) if r.split == "val"]
        assert [r.path.name[0] for r in moved] in ([], ["r"] * 6, ["f"] * 6)  # 6 of 20: nearest to 0.3
        assert len({r.path.name[0] for r in moved}) <= 1


def test_wilddeepfake_linked_video_folders_are_followed(tmp_path):
    elsewhere = wild_tree(tmp_path / "other_disk", {"videos": ["7/real/0", "7/real/1"]})
    root = wild_tree(tmp_path / "wild", {"real_train": ["1/real/0"], "fake_train": ["3/fake/0"],
                                         "real_test": ["4/real/0"], "fake_test": ["5/fake/0"]})
    os.symlink(elsewhere / "videos" / "7", root / "real_train" / "7")  # a video folder linked in
    os.symlink(root / "real_train", root / "real_train" / "1" / "loop")  # a link back up: not walked twice
    rows = {r.path.relative_to(root).as_posix() for r in build_manifest("wilddeepfake", root, val_fraction=0).rows}
    assert rows == {"real_train/1/real/0", "real_train/7/real/0", "real_train/7/real/1", "fake_train/3/fake/0",
                    "real_test/4/real/0", "fake_test/5/fake/0"}


def test_celebdf_upper_case_extensions_and_v1_counts(tmp_path):
    root = celebdf_tree(tmp_path / "celeb")
    link(root / "Celeb-real/id3_0000.MP4")
    link(root / "Celeb-synthesis/id3_id0_0000.MP4")
    rows = {r.path.name: r for r in build_manifest("celebdf", root, val_fraction=0).rows}
    assert rows["id3_0000.MP4"].label == 0 and rows["id3_id0_0000.MP4"].label == 1
    assert rows["id3_id0_0000.MP4"].source.name == "id3_0000.MP4"
    expected = {i.group: i.expected for i in build_manifest("celebdf", root, version="v1").inventory}
    assert (expected["Celeb-real"], expected["YouTube-real"], expected["Celeb-synthesis"]) == (158, 250, 795)
    assert expected["Celeb-real"] + expected["YouTube-real"] == 408  # the authors' v1 total of real videos


def test_dfdc_preview_draws_a_validation_split_by_subject(tmp_path):
    root, meta = tmp_path / "preview", {}
    for subject in range(6):
        for name, label in ((f"original_videos/{subject}/{subject}_A/r.mp4", "real"),
                            (f"method_A/{subject}/{subject}_A/f.mp4", "fake")):
            link(root / name)
            meta[name] = {"label": label, "set": "train" if subject < 5 else "test"}
    (root / "dataset.json").write_text(json.dumps(meta))
    for seed in range(5):
        manifest = build_manifest("dfdc", root, val_fraction=0.2, seed=seed)
        val = [r for r in manifest.rows if r.split == "val"]
        assert len(val) == 2 and len({r.path.relative_to(root).parts[1] for r in val}) == 1  # one subject, both
        assert {r.split for r in manifest.rows if "/5/" in r.path.as_posix()} == {"test"}
        assert any("2 of 10 moved" in n and "preview" in n for n in manifest.notes)


def test_dfdc_labels_with_a_byte_order_mark_and_float_labels(tmp_path):
    root = tmp_path / "dfdc"
    link(root / "test/videos/a.mp4")
    link(root / "test/videos/b.mp4")
    (root / "test/labels.csv").write_bytes("filename,label\na.mp4,0.0\nb.mp4,1.0\n".encode("utf-8-sig"))
    rows = {r.path.name: r.label for r in build_manifest("dfdc", root).rows}
    assert rows == {"a.mp4": 0, "b.mp4": 1}


def test_deeperforensics_upper_case_list_names_and_missing_reals_relative(tmp_path):
    root, ffpp = tmp_path / "dfo", tmp_path / "ffpp"
    link(root / "manipulated_videos/end_to_end/000_M004.MP4")
    link(ffpp / "original_sequences/youtube/c23/videos/001.mp4")  # 000's real is missing
    (root / "lists/splits").mkdir(parents=True)
    (root / "lists/splits/train.txt").write_text("000_M004.MP4\n")
    (root / "lists/splits/val.txt").write_text("")
    (root / "lists/splits/test.txt").write_text("")
    manifest = build_manifest("deeperforensics", root, ffpp_root=ffpp)
    assert [r.path.name for r in manifest.rows] == ["000_M004.MP4"]
    real, fake = manifest.inventory
    assert real.missing == ["original_sequences/youtube/c23/videos/000.mp4"] and fake.missing == []
