"""Benchmark layouts and protocols fail closed (issue 21, items 3-6, 8 and part of 15).

Miniature dataset trees (bundled clip linked under the dataset's names, as in
``test_benchmarks_manifest``) with the hostile list files of the issue: leaking validation
groups, paths outside the root, spellings and conflicts in lists, symbolic links that give
frames two labels, a benchmark fed another dataset's manifest, malformed metadata.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from dynsnip.cli import main
from dynsnip.data.benchmarks import LayoutError, build_manifest, official_splits
from dynsnip.data.benchmarks.protocols import PROTOCOLS
from dynsnip.data.manifest import ManifestEntry, read_manifest, write_manifest
from test_benchmarks_manifest import celebdf_tree, ffpp_tree, link

SECRET = "secret.mp4"  # a file outside every dataset root (the role of /etc/passwd)


def dfdc_part(root: Path, metadata: dict | str, on_disk=()) -> Path:
    part = root / "dfdc_train_part_0"
    for name in on_disk:
        link(part / name)
    part.mkdir(parents=True, exist_ok=True)
    (part / "metadata.json").write_text(metadata if isinstance(metadata, str) else json.dumps(metadata))
    return part


# --- item 3: DFDC fakes of an original that is not on disk -----------------------------------------

def test_dfdc_fakes_of_a_missing_original_stay_in_one_split(tmp_path):
    root = tmp_path / "dfdc"
    metadata, on_disk = {}, []
    for o in range(6):  # six originals not downloaded, three fakes of each on disk
        for k in range(3):
            name = f"fake{o}{k}.mp4"
            metadata[name] = {"label": "FAKE", "split": "train", "original": f"orig{o}.mp4"}
            on_disk.append(name)
    for r in range(4):
        metadata[f"real{r}.mp4"] = {"label": "REAL", "split": "train", "original": None}
        on_disk.append(f"real{r}.mp4")
    dfdc_part(root, metadata, on_disk)
    for seed in range(5):
        rows = build_manifest("dfdc", root, val_fraction=0.4, seed=seed).rows
        assert {r.split for r in rows} == {"train", "val"}
        for o in range(6):
            splits = {r.split for r in rows if r.path.name.startswith(f"fake{o}")}
            assert len(splits) == 1, (seed, o, splits)  # grouped by the original metadata.json names
        assert all(r.source is None for r in rows)  # the original is not on disk: no source written


# --- item 4: list entries outside the dataset root -----------------------------------------------

@pytest.mark.parametrize("escape", ["../../secret.mp4", "ABSOLUTE"])
def test_dfdc_lists_naming_paths_outside_the_root_are_refused(tmp_path, escape):
    link(tmp_path / SECRET)
    name = str(tmp_path / SECRET) if escape == "ABSOLUTE" else escape
    root = tmp_path / "dfdc"
    dfdc_part(root, {name: {"label": "REAL", "split": "train", "original": None}})
    with pytest.raises(LayoutError, match="is outside"):
        build_manifest("dfdc", root)

    test_root = tmp_path / "dfdc_test"
    link(test_root / "test/videos/t1.mp4")
    relative = "../../../secret.mp4" if escape != "ABSOLUTE" else name
    (test_root / "test/labels.csv").write_text(f"filename,label\nt1.mp4,1\n{relative},0\n")
    with pytest.raises(LayoutError, match=r"labels.csv, row 3: path .* is outside"):
        build_manifest("dfdc", test_root)

    preview = tmp_path / "preview"
    link(preview / "original_videos/1/a.mp4")
    (preview / "dataset.json").write_text(json.dumps({
        "original_videos/1/a.mp4": {"label": "real", "set": "train"},
        ("../secret.mp4" if escape != "ABSOLUTE" else name): {"label": "real", "set": "test"}}))
    with pytest.raises(LayoutError, match=r"dataset.json.*is outside"):
        build_manifest("dfdc", preview)
    # and nothing was written by the command either
    out = tmp_path / "out.csv"
    assert main(["manifest", "dfdc", str(preview), "--out", str(out)]) == 2 and not out.exists()


def test_other_readers_refuse_list_paths_outside_the_root(tmp_path):
    link(tmp_path / SECRET)
    celeb = celebdf_tree(tmp_path / "celeb")
    (celeb / "List_of_testing_videos.txt").write_text("1 Celeb-real/id0_0000.mp4\n1 ../secret.mp4\n")
    with pytest.raises(LayoutError, match=r"line 2: path '../secret.mp4' is outside"):
        build_manifest("celebdf", celeb)
    (celeb / "List_of_testing_videos.txt").write_text("1 Celeb-real/id0_0000.mp4\n1 Celeb-real/../../secret.mp4\n")
    with pytest.raises(LayoutError, match="is outside"):
        build_manifest("celebdf", celeb)

    dfo, ffpp = tmp_path / "dfo", tmp_path / "ffpp"
    link(dfo / "manipulated_videos/end_to_end/000_M004.mp4")
    link(ffpp / "original_sequences/youtube/c23/videos/000.mp4")
    (dfo / "lists/splits").mkdir(parents=True)
    for split in ("train", "val"):
        (dfo / f"lists/splits/{split}.txt").write_text("")
    (dfo / "lists/splits/test.txt").write_text("000_M004.mp4\n000_x/../../../../secret.mp4\n")
    with pytest.raises(LayoutError, match="test.txt, line 2"):
        build_manifest("deeperforensics", dfo, ffpp_root=ffpp)

    splits = tmp_path / "splits"
    splits.mkdir()
    official = official_splits()
    official["test"][0] = ("../../../../secret", official["test"][0][1])
    for split, pairs in official.items():
        (splits / f"{split}.json").write_text(json.dumps([list(p) for p in pairs]))
    with pytest.raises(LayoutError, match=r"test.json: path '../../../../secret' is outside"):
        build_manifest("ffpp", ffpp_tree(tmp_path / "ffpp2"), splits_folder=splits)
    official["test"][0] = ("sub/953", official["test"][0][1])
    (splits / "test.json").write_text(json.dumps([list(p) for p in official["test"]]))
    with pytest.raises(LayoutError, match="not a plain name"):
        build_manifest("ffpp", tmp_path / "ffpp2", splits_folder=splits)


# --- item 5: spellings and conflicts in lists ------------------------------------------------------

def test_celebdf_test_list_spellings_match_their_videos(tmp_path, capsys):
    root = celebdf_tree(tmp_path / "celeb")
    (root / "List_of_testing_videos.txt").write_text(
        "1 ./YouTube-real/00170.mp4\n0 celeb-synthesis/ID0_ID1_0000.mp4\n1 Celeb-real//id0_0000.mp4\n"
        "1 ./YouTube-real/00170.mp4\n")  # the same line twice: one video
    manifest = build_manifest("celebdf", root, val_fraction=0)
    assert {r.path.relative_to(root).as_posix() for r in manifest.rows if r.split == "test"} == {
        "YouTube-real/00170.mp4", "Celeb-synthesis/id0_id1_0000.mp4", "Celeb-real/id0_0000.mp4"}
    listed = next(i for i in manifest.inventory if i.group == "test list")
    assert (listed.found, listed.missing) == (3, [])  # none reported as a missing download


def test_conflicting_labels_in_lists_are_errors_not_last_wins(tmp_path):
    root = celebdf_tree(tmp_path / "celeb")
    (root / "List_of_testing_videos.txt").write_text("1 YouTube-real/00170.mp4\n0 ./YouTube-real/00170.mp4\n")
    with pytest.raises(LayoutError, match="line 2: ./YouTube-real/00170.mp4 is listed as fake but line 1 lists it as real"):
        build_manifest("celebdf", root)

    dfdc = tmp_path / "dfdc"
    dfdc_part(dfdc, '{"aaaaaaaaaa.mp4": {"label": "FAKE", "split": "train", "original": "b.mp4"},\n'
                    ' "aaaaaaaaaa.mp4": {"label": "REAL", "split": "train", "original": null}}', ["aaaaaaaaaa.mp4"])
    with pytest.raises(LayoutError, match="'aaaaaaaaaa.mp4' is given twice with different values"):
        build_manifest("dfdc", dfdc)
    dfdc_part(dfdc, '{"aaaaaaaaaa.mp4": {"label": "FAKE", "label": "REAL", "original": null}}')
    with pytest.raises(LayoutError, match="'label' is given twice"):
        build_manifest("dfdc", dfdc)
    dfdc_part(dfdc, {"aaaaaaaaaa.mp4": {"label": "FAKE", "original": "b.mp4"},
                     "./aaaaaaaaaa.mp4": {"label": "REAL", "original": None}})
    with pytest.raises(LayoutError, match="listed twice"):
        build_manifest("dfdc", dfdc)
    # the same key twice with the same value is one entry
    dfdc_part(dfdc, '{"aaaaaaaaaa.mp4": {"label": "REAL"}, "aaaaaaaaaa.mp4": {"label": "REAL"}}')
    assert [r.label for r in build_manifest("dfdc", dfdc).rows] == [0]

    test_root = tmp_path / "dfdc_test"
    link(test_root / "test/videos/t1.mp4")
    (test_root / "test/labels.csv").write_text("filename,label\nt1.mp4,1\nt1.mp4,0\n")
    with pytest.raises(LayoutError, match="row 3: t1.mp4 is labelled 0 but row 2 labels it 1"):
        build_manifest("dfdc", test_root)


# --- item 6: WildDeepfake frames reachable under two labels ----------------------------------------

def test_wilddeepfake_symlink_giving_frames_two_labels_is_refused(tmp_path):
    root = tmp_path / "wild"
    for folder in ("real_train/1/real/0", "fake_train/2/fake/0", "real_test/3/real/0", "fake_test/5/fake/0"):
        (root / folder).mkdir(parents=True)
        for i in range(3):
            (root / folder / f"{i}.png").write_bytes(b"")
    assert len(build_manifest("wilddeepfake", root, val_fraction=0).rows) == 4
    (root / "real_test/9").symlink_to(root / "fake_test/5/fake/0", target_is_directory=True)
    with pytest.raises(LayoutError, match=r"real_test/9 \(real, test\) and fake_test/5/fake/0 \(fake, test\)"):
        build_manifest("wilddeepfake", root, val_fraction=0)
    (root / "real_test/9").unlink()
    (root / "real_test/9").mkdir()  # a sequence whose frame files are links into a fake sequence
    for i in range(3):
        (root / "real_test/9" / f"{i}.png").symlink_to(root / "fake_test/5/fake/0" / f"{i}.png")
    with pytest.raises(LayoutError, match="reached from two sequences"):
        build_manifest("wilddeepfake", root, val_fraction=0)


# --- item 15: malformed DFDC metadata, --out inside the root ---------------------------------------

@pytest.mark.parametrize("original", [["a.mp4", "b.mp4"], {"name": "a.mp4"}, 7, "sub/a.mp4", "../a.mp4"])
def test_dfdc_original_that_is_not_a_file_name_is_a_named_error(tmp_path, original):
    root = tmp_path / "dfdc"
    dfdc_part(root, {"aaaaaaaaaa.mp4": {"label": "FAKE", "split": "train", "original": original}}, ["aaaaaaaaaa.mp4"])
    with pytest.raises(LayoutError, match=r"aaaaaaaaaa.mp4'.*'original'"):
        build_manifest("dfdc", root)


def test_deeply_nested_metadata_is_a_named_error(tmp_path, capsys):
    root = tmp_path / "dfdc"
    dfdc_part(root, '{"a.mp4": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(LayoutError, match="nested too deeply"):
        build_manifest("dfdc", root)
    assert main(["manifest", "dfdc", str(root), "--out", str(tmp_path / "m.csv")]) == 2
    assert "nested too deeply" in capsys.readouterr().err


def test_manifest_out_inside_the_dataset_root_is_refused(tmp_path, capsys):
    root = tmp_path / "dfdc"
    part = dfdc_part(root, {"aaaaaaaaaa.mp4": {"label": "REAL", "split": "train", "original": None}},
                     ["aaaaaaaaaa.mp4"])
    before = (part / "metadata.json").read_text()
    for out in (part / "metadata.json", root / "manifest.csv", root / "sub" / "m.csv"):
        assert main(["manifest", "dfdc", str(root), "--out", str(out), "--overwrite"]) == 2
        assert "inside the dataset root" in capsys.readouterr().err
    assert (part / "metadata.json").read_text() == before and not (root / "manifest.csv").exists()
    # the library refuses too, and a benchmark's --out inside a --data root writes nothing there
    with pytest.raises(ValueError, match="inside the dataset root"):
        build_manifest("dfdc", root).write(part / "metadata.json", overwrite=True)
    assert main(["manifest", "dfdc", str(root), "--out", str(tmp_path / "m.csv")]) == 0  # outside: fine


# --- item 8: a protocol scores its own dataset only ------------------------------------------------

def test_recorded_provenance_survives_manifest_and_face_extraction(tmp_path):
    root = ffpp_tree(tmp_path / "ffpp", compression="c40", methods=("Deepfakes",))
    out = tmp_path / "ffpp_c40.csv"
    assert main(["manifest", "ffpp", str(root), "--compression", "c40", "--methods", "Deepfakes", "--out", str(out)]) == 1
    assert {e.dataset for e in read_manifest(out)} == {"ffpp:c40"}
    copy = write_manifest([ManifestEntry(Path("a.mp4"), 1, "test", "Deepfakes", dataset="ffpp:c40")],
                          tmp_path / "copy.csv")
    assert read_manifest(copy)[0].dataset == "ffpp:c40"
    # extract-faces carries the column into faces.csv (the fast path the benchmark reads)
    one = tmp_path / "one.csv"
    with out.open() as f:
        rows = list(csv.DictReader(f))
    with one.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerow(rows[0])
    faces = tmp_path / "faces"
    assert main(["extract-faces", "--manifest", str(one), "--out", str(faces), "--face-detector", "none",
                 "--max-frames", "4", "--workers", "1", "--no-progress"]) == 0
    assert [e.dataset for e in read_manifest(faces / "faces.csv")] == ["ffpp:c40"]


def test_benchmark_refuses_another_datasets_manifest_before_scoring(tmp_path, capsys):
    ffpp_csv = tmp_path / "ffpp.csv"
    assert main(["manifest", "ffpp", str(ffpp_tree(tmp_path / "ffpp")), "--out", str(ffpp_csv)]) == 1
    capsys.readouterr()
    out = tmp_path / "bench"
    common = ["--model", "no-such-model-is-ever-loaded", "--out", str(out), "--workers", "0", "--no-progress"]
    assert main(["benchmark", "celebdf", "--data", str(ffpp_csv), *common]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "protocol celebdf needs Celeb-DF v2 (celebdf:v2) data" in err and "records ffpp:c23 (10 rows)" in err
    assert not (out / "benchmark.json").exists() and not (out / "test_manifest.csv").exists()
    # a vouch cannot override a recorded dataset, nor can the wrong variant pass
    assert main(["benchmark", "celebdf", "--data", str(ffpp_csv), "--data-is", "celebdf:v2", *common]) == 2
    assert "records ffpp:c23" in capsys.readouterr().err
    assert main(["benchmark", "ffpp-lq", "--data", str(ffpp_csv), *common]) == 2
    assert "needs FaceForensics++ c40 (ffpp:c40) data" in capsys.readouterr().err
    assert main(["benchmark", "celebdf", "--data", str(ffpp_csv), "--data-is", "ffpp:c23", *common]) == 2
    assert "--data-is ffpp:c23: protocol celebdf needs Celeb-DF v2" in capsys.readouterr().err


def test_benchmark_manifest_of_unknown_provenance_needs_a_vouch(tmp_path, capsys):
    celeb = celebdf_tree(tmp_path / "celeb")
    recorded = tmp_path / "celeb.csv"
    assert main(["manifest", "celebdf", str(celeb), "--out", str(recorded)]) == 1
    with recorded.open() as f:
        rows = list(csv.DictReader(f))
    plain = tmp_path / "plain.csv"  # what a hand-made (or older) manifest looks like: no dataset column
    with plain.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["path", "label", "split", "method"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    capsys.readouterr()
    protocol = PROTOCOLS["celebdf"]
    from dynsnip.engine.benchmark import check_protocol_data

    assert check_protocol_data(protocol, recorded).startswith("recorded")
    with pytest.raises(ValueError, match=r"records no dataset .* pass --data-is celebdf:v2 to vouch"):
        check_protocol_data(protocol, plain)
    assert check_protocol_data(protocol, plain, "celebdf:v2").startswith("vouched for by --data-is celebdf:v2")
    out = tmp_path / "bench"
    common = ["--model", "no-such-model-is-ever-loaded", "--out", str(out), "--workers", "0", "--no-progress"]
    assert main(["benchmark", "celebdf", "--data", str(plain), *common]) == 2
    assert "--data-is celebdf:v2" in capsys.readouterr().err and not (out / "test_manifest.csv").exists()
    # an FF++ manifest stripped of its record is still refused: its methods and folders name FF++
    ffpp_csv = tmp_path / "ffpp.csv"
    assert main(["manifest", "ffpp", str(ffpp_tree(tmp_path / "ffpp")), "--out", str(ffpp_csv)]) == 1
    with ffpp_csv.open() as f:
        ffpp_rows = list(csv.DictReader(f))
    with plain.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["path", "label", "split", "method"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(ffpp_rows)
    with pytest.raises(ValueError, match=r"records no dataset and its fakes' methods name FaceForensics\+\+"):
        check_protocol_data(protocol, plain, "celebdf:v2")
    for row in ffpp_rows:
        row["method"] = ""
    with plain.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["path", "label", "split", "method"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(ffpp_rows)
    with pytest.raises(ValueError, match=r"its paths are in the layout of FaceForensics\+\+ c23"):
        check_protocol_data(protocol, plain, "celebdf:v2")
    with pytest.raises(ValueError, match=r"layout of FaceForensics\+\+ c23"):  # c23 folders are not ffpp-lq data
        check_protocol_data(PROTOCOLS["ffpp-lq"], plain, "ffpp:c40")


def test_benchmark_checks_the_training_data_too(tmp_path, capsys):
    celeb_csv = tmp_path / "celeb.csv"
    assert main(["manifest", "celebdf", str(celebdf_tree(tmp_path / "celeb")), "--out", str(celeb_csv)]) == 1
    capsys.readouterr()
    out = tmp_path / "bench"
    assert main(["benchmark", "ffpp-to-celebdf", "--train", "--train-data", str(celeb_csv), "--data", str(celeb_csv),
                 "--out", str(out), "--workers", "0", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "protocol ffpp-to-celebdf (training) needs FaceForensics++ (ffpp) data" in err and "celebdf:v2" in err
    assert not (out / "run").exists() and list(out.iterdir()) == []  # refused: no manifest left to block a rerun
    assert main(["benchmark", "celebdf", "--data", str(celeb_csv), "--train-data-is", "ffpp", "--train",
                 "--out", str(out), "--no-progress"]) == 2
    assert "--train-data-is vouches for --train-data" in capsys.readouterr().err


def test_a_recorded_manifest_without_test_rows_gets_the_missing_split_error(tmp_path):
    from dynsnip.engine.benchmark import write_test_manifest

    root = tmp_path / "dfdc"
    dfdc_part(root, {"a.mp4": {"label": "REAL"}, "b.mp4": {"label": "FAKE", "original": "a.mp4"}}, ["a.mp4", "b.mp4"])
    out = tmp_path / "dfdc.csv"
    build_manifest("dfdc", root).write(out)
    with pytest.raises(ValueError, match="needs real and fake videos in split 'test'; found 0 real, 0 fake"):
        write_test_manifest(PROTOCOLS["dfdc"], out, tmp_path / "t.csv")


def test_a_row_scored_on_one_class_shows_no_accuracy_and_says_why():
    """Every fake failed (NaN outputs, say): the reals alone give an 'accuracy' that is no protocol's
    accuracy; the table leaves it out, as the undefined AUC, with a note."""
    from dynsnip.engine.benchmark import _metrics, one_class_notes

    reals_only = _metrics({"auc": None, "accuracy": 0.6667, "num_real": 3, "num_fake": 0, "num_failed": 3})
    both = _metrics({"auc": 0.75, "accuracy": 0.5, "num_real": 2, "num_fake": 2, "num_failed": 0})
    assert reals_only["accuracy"] is None and both["accuracy"] == 0.5
    notes = one_class_notes({"rows": [{"subset": "Celeb-DF", "video": reals_only}, {"subset": "x", "video": both}]})
    assert notes == ["Celeb-DF: only 3 real video(s) were scored, no fake one: an accuracy over one class is not the "
                     "protocol's, so neither it nor the AUC is given"]


def test_options_that_would_be_ignored_are_refused(tmp_path, capsys):
    """Training options without --train, and --video-score mean with --faces largest (one face has no mean),
    were accepted and ignored; benchmark.json even recorded the video score never applied."""
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label,split\nv.mp4,0,test\n")
    base = ["benchmark", "celebdf", "--model", "some/model", "--data", str(manifest), "--out", str(tmp_path / "out")]
    assert main([*base, "--pseudo-fakes", "both", "--epochs", "3", "--balance-classes"]) == 2
    assert "--epochs, --pseudo-fakes, --balance-classes set(s) the training of --train" in capsys.readouterr().err
    assert main([*base, "--faces", "largest", "--video-score", "mean"]) == 2
    assert "--video-score mean reduces several faces to one score, but --faces largest" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
