"""What a benchmark manifest must not leave out silently, and conventions no other test pins.

Each test is an audit finding: videos on disk that no layout file labels (DFDC), two DFDC test
sets in one root, WildDeepfake archives left unextracted beside extracted sequences, a
Celeb-DF v1 root read without ``--version``, FF++ files outside the official pairs and
upper-case extensions, and DeeperForensics' rule that a real shared by several splits goes
to ``test`` first. The trees are the miniature ones of ``test_benchmarks_manifest.py``.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from dynsnip.cli import main
from dynsnip.data.benchmarks import LayoutError, build_manifest
from test_benchmarks_manifest import FFPP_TEST_PAIR, celebdf_tree, ffpp_tree, link, rows_of, wild_tree


def _notes_with(manifest, *words: str) -> list[str]:
    """The manifest's notes holding every one of ``words``."""
    return [n for n in manifest.notes if all(w in n for w in words)]


def dfdc_part(root: Path, names: dict[str, dict], on_disk: tuple[str, ...] = ()) -> Path:
    """A training part ``root`` whose ``metadata.json`` lists ``names``; the listed videos and
    ``on_disk`` (unlisted) are linked in."""
    for name in (*names, *on_disk):
        link(root / name)
    (root / "metadata.json").write_text(json.dumps(names))
    return root


REAL_AND_FAKE = {"aaaaaaaaaa.mp4": {"label": "REAL", "split": "train", "original": None},
                 "bbbbbbbbbb.mp4": {"label": "FAKE", "split": "train", "original": "aaaaaaaaaa.mp4"}}


def test_dfdc_test_videos_without_labels_csv_are_noted(tmp_path, capsys):
    root = tmp_path / "dfdc"
    dfdc_part(root / "dfdc_train_part_0", REAL_AND_FAKE)
    for name in ("t1.mp4", "t2.mp4", "t3.mp4", "t4.mp4"):
        link(root / "test/videos" / name)
    manifest = build_manifest("dfdc", root, val_fraction=0)
    assert {r.split for r in manifest.rows} == {"train"}  # no labels: not guessed
    [note] = _notes_with(manifest, "4 video(s)", "test/labels.csv", "not in the manifest")
    assert str(root / "test" / "labels.csv") in note and "t1.mp4" in note and "(+1 more)" in note
    out = tmp_path / "dfdc.csv"
    assert manifest.left_out == {"test videos without test/labels.csv": 4}
    # written, with exit code 1 as for missing videos: the data on disk is not all in the manifest
    assert main(["manifest", "dfdc", str(root), "--out", str(out), "--val-fraction", "0"]) == 1
    assert "4 video(s)" in capsys.readouterr().out  # the note is printed
    # with nothing else there, the error says what is missing beside the videos
    shutil.rmtree(root / "dfdc_train_part_0")
    with pytest.raises(LayoutError, match=r"test/videos holds 4 video\(s\).*test/labels.csv, their labels, is missing"):
        build_manifest("dfdc", root)


def test_dfdc_videos_that_no_label_file_lists_are_noted(tmp_path):
    root = tmp_path / "dfdc"
    # ./cccccccccc.mp4 is cccccccccc.mp4 on disk: listed, under another spelling
    names = dict(REAL_AND_FAKE, **{"./cccccccccc.mp4": {"label": "REAL", "split": "train", "original": None}})
    dfdc_part(root / "dfdc_train_part_0", names, on_disk=("zzzzzzzzzz.mp4",))
    for name in ("t1.mp4", "t2.mp4", "t3.mp4", "t4.mp4"):
        link(root / "test/videos" / name)
    (root / "test/labels.csv").write_text("filename,label\nt1.mp4,1\nt2.mp4,0\n")  # truncated
    manifest = build_manifest("dfdc", root, val_fraction=0)
    assert {r.path.name for r in manifest.rows} == {"aaaaaaaaaa.mp4", "bbbbbbbbbb.mp4", "cccccccccc.mp4",
                                                    "t1.mp4", "t2.mp4"}
    [part_note] = _notes_with(manifest, "training parts", "metadata.json")
    assert "1 video(s)" in part_note and "dfdc_train_part_0/zzzzzzzzzz.mp4" in part_note
    assert "cccccccccc" not in part_note
    [test_note] = _notes_with(manifest, "public test set", "test/labels.csv does not list")
    assert "2 video(s)" in test_note and "test/videos/t3.mp4, test/videos/t4.mp4" in test_note
    assert manifest.left_out == {"training-part videos no metadata.json lists": 1,
                                 "test videos test/labels.csv does not list": 2}
    # every video listed: no such note
    (root / "dfdc_train_part_0/zzzzzzzzzz.mp4").unlink()
    (root / "test/labels.csv").write_text("filename,label\nt1.mp4,1\nt2.mp4,0\nt3.mp4,0\nt4.mp4,1\n")
    assert not _notes_with(build_manifest("dfdc", root, val_fraction=0), "does not list")


def test_dfdc_preview_and_public_test_set_in_one_root_are_told_apart(tmp_path):
    root = tmp_path / "dfdc"
    link(root / "original_videos/1/1_A_001.mp4")
    link(root / "method_A/1/1_A_001_0.mp4")
    link(root / "method_A/2/2_A_001_0.mp4")
    (root / "dataset.json").write_text(json.dumps({
        "original_videos/1/1_A_001.mp4": {"label": "real", "set": "test"},
        "method_A/1/1_A_001_0.mp4": {"label": "fake", "set": "test"},
        "method_A/2/2_A_001_0.mp4": {"label": "fake", "set": "train"}}))
    link(root / "test/videos/t1.mp4")
    (root / "test/labels.csv").write_text("filename,label\nt1.mp4,1\n")
    manifest = build_manifest("dfdc", root, val_fraction=0)
    assert manifest.tag == "dfdc"  # the tag other code relies on is unchanged
    [note] = _notes_with(manifest, "two DFDC test sets")
    assert "2 row(s) of the preview set" in note and "1 of the public test set" in note
    assert "preview dataset" in note and "around 5,000 videos" in note
    # the public test set alone says it is not the paper's DFDC
    (root / "dataset.json").unlink()
    [note] = _notes_with(build_manifest("dfdc", root, val_fraction=0), "public test set", "preview dataset")
    assert "two DFDC test sets" not in note


def test_wilddeepfake_archives_beside_extracted_sequences_are_noted(tmp_path):
    root = wild_tree(tmp_path / "wild", {"real_train": ["1/real/0", "2/real/0"], "fake_train": ["4/fake/0"],
                                         "real_test": ["5/real/0"], "fake_test": ["8/fake/0"]})
    (root / "real_train/3.tar.gz").write_bytes(b"")  # not extracted
    (root / "real_train/1.tar.gz").write_bytes(b"")  # kept beside its extracted folder 1/: not a gap
    for name in ("6.tar.gz", "7.tar", "9.zip", "10.tgz"):
        (root / "real_test" / name).write_bytes(b"")
    manifest = build_manifest("wilddeepfake", root, val_fraction=0)
    assert len(manifest.rows) == 5
    [train_note] = _notes_with(manifest, "real_train:", "not extracted")
    assert "1 archive(s)" in train_note and "3.tar.gz" in train_note and "1.tar.gz" not in train_note
    assert "not in the manifest" in train_note
    [test_note] = _notes_with(manifest, "real_test:", "not extracted")
    assert "4 archive(s)" in test_note and "10.tgz, 6.tar.gz, 7.tar (+1 more)" in test_note
    assert not _notes_with(manifest, "fake_train:") and not _notes_with(manifest, "fake_test:")
    assert manifest.left_out == {"real_train: archives not extracted": 1, "real_test: archives not extracted": 4}


def celebdf_v1_tree(root: Path, test_lines: int = 100) -> Path:
    """A root of Celeb-DF v1's size: 158 + 250 real, 795 fake (empty files), ``test_lines`` listed."""
    for folder, n in (("Celeb-real", 158), ("YouTube-real", 250)):
        (root / folder).mkdir(parents=True)
        for i in range(n):
            (root / folder / (f"id{i}_0000.mp4" if folder == "Celeb-real" else f"{i:05d}.mp4")).touch()
    (root / "Celeb-synthesis").mkdir()
    fakes = [f"id{i % 158}_id{(i + 1) % 158}_{i:04d}.mp4" for i in range(795)]
    for name in fakes:
        (root / "Celeb-synthesis" / name).touch()
    lines = [f"1 YouTube-real/{i:05d}.mp4" for i in range(test_lines // 2)]
    lines += [f"0 Celeb-synthesis/{name}" for name in fakes[:test_lines - len(lines)]]
    (root / "List_of_testing_videos.txt").write_text("\n".join(lines) + "\n")
    return root


def test_celebdf_v1_root_without_version_is_not_read_as_v2(tmp_path):
    root = celebdf_v1_tree(tmp_path / "celeb_v1")
    manifest = build_manifest("celebdf", root, val_fraction=0)
    assert manifest.tag == "celebdf:v1" and manifest.dataset == "Celeb-DF v1"
    assert {i.group: i.expected for i in manifest.inventory}["Celeb-synthesis"] == 795
    [note] = _notes_with(manifest, "version not given", "v1")
    assert "--version v2" in note
    out = tmp_path / "celeb.csv"
    assert main(["manifest", "celebdf", str(root), "--out", str(out), "--val-fraction", "0"]) == 0
    assert {row["dataset"] for row in rows_of(out).values()} == {"celebdf:v1"}
    from dynsnip.data.benchmarks.protocols import PROTOCOLS
    from dynsnip.engine.benchmark import check_protocol_data

    with pytest.raises(ValueError, match=r"records celebdf:v1 .*: another release or compression of the dataset "
                                         r"than the protocol tests; give Celeb-DF v2"):
        check_protocol_data(PROTOCOLS["celebdf"], out)
    # a version given is obeyed, without a note
    manifest = build_manifest("celebdf", root, version="v2", val_fraction=0)
    assert manifest.tag == "celebdf:v2" and not _notes_with(manifest, "version not given")
    # the same folders beside a list of v2's 518 videos: read as v2, as before, with a note
    celebdf_v1_tree(tmp_path / "v1_sized_518", test_lines=518)
    manifest = build_manifest("celebdf", tmp_path / "v1_sized_518", val_fraction=0)
    assert manifest.tag == "celebdf:v2" and _notes_with(manifest, "may be v1", "--version v1")


def test_celebdf_version_inference_leaves_v2_roots_alone(tmp_path):
    # a partial v2 download with its whole 518-video list: v2, no note (most listed videos missing)
    root = celebdf_tree(tmp_path / "celeb")
    listed = [f"0 Celeb-synthesis/id{i}_id{i + 1}_0000.mp4" for i in range(517)] + ["1 YouTube-real/00170.mp4"]
    (root / "List_of_testing_videos.txt").write_text("\n".join(listed) + "\n")
    manifest = build_manifest("celebdf", root, val_fraction=0)
    assert manifest.tag == "celebdf:v2" and not _notes_with(manifest, "version not given")
    # a tree that may be v1 (small folders, a short list): still v2, the note says how to read it as v1
    root = celebdf_tree(tmp_path / "small")
    manifest = build_manifest("celebdf", root, val_fraction=0)
    assert manifest.tag == "celebdf:v2"
    [note] = _notes_with(manifest, "version not given", "may be v1")
    assert "--version v1" in note
    # more fakes than v1 has: only v2 can be that, no note
    for i in range(796):
        (root / "Celeb-synthesis" / f"id9_id8_{i:04d}.mp4").touch()
    assert not _notes_with(build_manifest("celebdf", root, val_fraction=0), "version not given")


def test_ffpp_upper_case_extensions_and_files_outside_the_pairs(tmp_path):
    root = ffpp_tree(tmp_path / "ffpp", methods=("Deepfakes",))
    a, b = FFPP_TEST_PAIR
    videos = root / "manipulated_sequences/Deepfakes/c23/videos"
    (videos / f"{a}_{b}.mp4").unlink()
    link(videos / f"{a}_{b}.MP4")  # an upper-case extension is the same video
    (root / f"original_sequences/youtube/c23/videos/{a}.mp4").unlink()
    link(root / f"original_sequences/youtube/c23/videos/{a}.MP4")
    link(videos / "000_001.mp4")  # no split pairs 000 with 001
    link(videos / "000_002.avi")
    (videos / "notes.txt").write_text("not a video")
    manifest = build_manifest("ffpp", root, methods=["Deepfakes"])
    real, deepfakes = manifest.inventory
    assert (real.found, deepfakes.found) == (6, 6) and f"{videos.relative_to(root)}/{a}_{b}.mp4" not in deepfakes.missing
    rows = {r.path.name: r for r in manifest.rows}
    fake = rows[f"{a}_{b}.MP4"]
    assert (fake.label, fake.split, fake.method, fake.source.name) == (1, "test", "Deepfakes", f"{a}.MP4")
    assert "000_001.mp4" not in rows
    [note] = _notes_with(manifest, "manipulated_sequences/Deepfakes/c23/videos", "not among the official names")
    assert "2 video file(s)" in note and "000_001.mp4, 000_002.avi" in note and "notes.txt" not in note
    assert not _notes_with(manifest, "original_sequences/youtube")
    # both spellings on disk: the exact .mp4 is the video, the other one a stray file
    link(videos / f"{b}_{a}.MP4")
    manifest = build_manifest("ffpp", root, methods=["Deepfakes"])
    assert f"{b}_{a}.mp4" in {r.path.name for r in manifest.rows}
    assert _notes_with(manifest, "3 video file(s)", f"{b}_{a}.MP4")
    # two spellings and no exact one: which is meant is unknown, refused
    (videos / f"{b}_{a}.mp4").unlink()
    link(videos / f"{b}_{a}.Mp4")
    with pytest.raises(LayoutError, match="differ only in the letter case"):
        build_manifest("ffpp", root, methods=["Deepfakes"])


def test_ffpp_deepfakedetection_upper_case_extensions(tmp_path):
    root = tmp_path / "ffpp"
    link(root / "original_sequences/youtube/c23/videos/953.mp4")
    link(root / "original_sequences/actors/c23/videos/01__kitchen_pan.MP4")
    link(root / "manipulated_sequences/DeepFakeDetection/c23/videos/01_02__kitchen_pan__ABCDEFGH.MP4")
    rows = {r.path.name: r for r in build_manifest("ffpp", root, methods=["DeepFakeDetection"]).rows}
    assert rows["01_02__kitchen_pan__ABCDEFGH.MP4"].source.name == "01__kitchen_pan.MP4"


def test_deeperforensics_real_shared_across_splits_goes_to_test_first(tmp_path):
    """A real whose fakes are in several split lists goes to the first of test, val, train: a
    real shown in training must never be scored, so test wins over both, and val over train."""
    root, ffpp = tmp_path / "dfo", tmp_path / "ffpp"
    lists = {"train": ["000_M101.mp4", "001_W102.mp4", "003_M106.mp4"],
             "val": ["001_M103.mp4", "002_W104.mp4"],
             "test": ["000_W105.mp4", "002_M107.mp4"]}
    for names in lists.values():
        for name in names:
            link(root / "manipulated_videos/end_to_end" / name)
    for target in ("000", "001", "002", "003"):
        link(ffpp / f"original_sequences/youtube/c23/videos/{target}.mp4")
    (root / "lists/splits").mkdir(parents=True)
    for split, names in lists.items():
        (root / f"lists/splits/{split}.txt").write_text("\n".join(names) + "\n")
    manifest = build_manifest("deeperforensics", root, ffpp_root=ffpp)
    split_of = {r.path.name: r.split for r in manifest.rows}
    # 000: train + test -> test; 001: train + val -> val; 002: val + test -> test; 003: train only
    assert [split_of[f"{t}.mp4"] for t in ("000", "001", "002", "003")] == ["test", "val", "test", "train"]
    assert {split_of[n] for names in lists.values() for n in names} == {"train", "val", "test"}
    assert [split_of[n] for n in lists["test"]] == ["test", "test"]  # fakes keep their own lists' splits
    assert _notes_with(manifest, "3 fake(s) share a real video", "first of test, val, train")


def test_deeperforensics_fakes_no_split_list_names_are_counted_not_dropped(tmp_path, capsys):
    """A fake on disk that no split list names has no split: it is left out of the manifest (it
    could be a test video trained on), but named in a note and counted in ``left_out``, and
    ``dynsnip manifest`` exits with 1 as for missing videos, never silently smaller."""
    root, ffpp = tmp_path / "dfo", tmp_path / "ffpp"
    lists = {"train": ["000_M101.mp4"], "val": ["001_M103.mp4"], "test": ["002_W104.mp4"]}
    for names in lists.values():
        for name in names:
            link(root / "manipulated_videos/end_to_end" / name)
    for extra in ("003_M110.mp4", "004_W111.MP4"):
        link(root / "manipulated_videos/end_to_end" / extra)
    (root / "manipulated_videos/end_to_end/readme.txt").write_text("not a video")
    for target in ("000", "001", "002"):
        link(ffpp / f"original_sequences/youtube/c23/videos/{target}.mp4")
    (root / "lists/splits").mkdir(parents=True)
    for split, names in lists.items():
        (root / f"lists/splits/{split}.txt").write_text("\n".join(names) + "\n")
    manifest = build_manifest("deeperforensics", root, ffpp_root=ffpp)
    assert {r.path.name for r in manifest.rows if r.label == 1} == {"000_M101.mp4", "001_M103.mp4", "002_W104.mp4"}
    assert manifest.left_out == {"end_to_end fakes no split list names": 2}
    assert _notes_with(manifest, "2 video(s) on disk that no split list", "003_M110.mp4, 004_W111.MP4")
    out = tmp_path / "dfo.csv"
    assert main(["manifest", "deeperforensics", str(root), "--ffpp-root", str(ffpp), "--out", str(out)]) == 1
    printed = capsys.readouterr()
    assert "2 video(s) on disk that no split list" in printed.out + printed.err
    assert "003_M110" not in out.read_text()


def test_dfdc_preview_videos_dataset_json_does_not_list_are_counted_not_dropped(tmp_path):
    """The preview set's videos under its folders that dataset.json does not list (a truncated file)
    have no label: left out, but named in a note and counted in ``left_out``."""
    root, meta = tmp_path / "preview", {}
    for subject in range(3):
        for name, label in ((f"original_videos/{subject}/{subject}_A/r.mp4", "real"),
                            (f"method_A/{subject}/{subject}_A/f.mp4", "fake")):
            link(root / name)
            meta[name] = {"label": label, "set": "train" if subject < 2 else "test"}
    (root / "dataset.json").write_text(json.dumps(meta))
    assert build_manifest("dfdc", root).left_out == {}
    link(root / "method_A/2/2_B/g.mp4")
    link(root / "original_videos/9/9_A/r.MP4")
    (root / "method_A/2/2_B/notes.txt").write_text("not a video")
    manifest = build_manifest("dfdc", root)
    assert len(manifest.rows) == 6
    assert manifest.left_out == {"preview videos dataset.json does not list": 2}
    assert _notes_with(manifest, "preview set: 2 video(s) on disk", "method_A/2/2_B/g.mp4, original_videos/9/9_A/r.MP4")
