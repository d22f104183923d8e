"""``dynsnip benchmark`` end to end on miniature trees with a tiny model, and its pieces."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dynsnip.cli import main
from dynsnip.data.benchmarks.protocols import PROTOCOLS, paper_results
from dynsnip.engine import Recipe, build_model, save_model
from dynsnip.engine.frame_level import FrameScoreRecorder, frame_level_report
from dynsnip.engine.metrics import roc_auc
from test_benchmarks_manifest import FFPP_TEST_PAIR, ffpp_tree, link

TINY = dict(channels=[8, 16, 32, 64], stem_width=8)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model("dil_resnet18", pretrained=False, **TINY)
    return save_model(model, tmp_path_factory.mktemp("tiny") / "model", recipe=Recipe(model="dil_resnet18", img_size=16))


def test_paper_numbers_are_the_ours_rows_of_tables_1_to_3():
    data = paper_results()
    assert "AAAI 2022" in data["paper"] and "744-752" in data["paper"]
    hq, lq = PROTOCOLS["ffpp-hq"].paper(), PROTOCOLS["ffpp-lq"].paper()
    assert hq["metric"] == "accuracy" and hq["source"]["table"] == 1
    assert hq["values"] == {"Deepfakes": 1.0, "Face2Face": 0.9929, "FaceSwap": 1.0, "NeuralTextures": 0.9643}
    assert lq["values"] == {"Deepfakes": 0.9928, "Face2Face": 0.9571, "FaceSwap": 0.9786, "NeuralTextures": 0.9428}
    assert [PROTOCOLS[p].paper()["values"] for p in ("celebdf", "dfdc", "wilddeepfake")] == [
        {"Celeb-DF": 0.9961}, {"DFDC": 0.9279}, {"WildDeepfake": 0.8511}]
    cross = PROTOCOLS["ffpp-to-celebdf"]
    assert cross.paper()["values"] == {"Celeb-DF": 0.7765} and cross.paper()["metric"] == "auc"
    assert (cross.epochs, cross.train_reader()) == (45, ("ffpp", {"compression": "c40"}))  # trained on FF++ LQ


def test_frame_scores_average_to_the_video_logit(tiny_model):
    model = build_model(str(tiny_model)).eval()
    recorder = FrameScoreRecorder(model)
    clips = torch.randn(3, 3, 2 * 4, 16, 16)
    with torch.no_grad():
        video = recorder(clips)
        torch.testing.assert_close(video, model(clips))
    frames = torch.stack(recorder.frame_logits)
    assert frames.shape == (3, 8)
    torch.testing.assert_close(frames.mean(1), video[:, 0], rtol=1e-5, atol=1e-5)
    predictions = [{"id": "a", "label": 0}, {"id": "b", "label": 1}, {"id": "c", "label": 1}]
    report = frame_level_report(recorder.frame_logits, predictions)
    assert (report["overall"]["num_real"], report["overall"]["num_fake"], report["frames_per_video"]) == (8, 16, 8)
    expected = roc_auc(torch.sigmoid(frames).flatten(), [0] * 8 + [1] * 16)
    assert report["overall"]["auc"] == pytest.approx(expected)
    with pytest.raises(ValueError, match="matched"):
        frame_level_report(recorder.frame_logits, predictions[:2])


def test_ffpp_hq_from_a_dataset_root_of_videos(tiny_model, tmp_path, capsys):
    """The FF++ test videos are one clip linked under many names: every score is the same up to
    float noise, so every video gets the same call and each per-method accuracy is exactly 0.5."""
    root = ffpp_tree(tmp_path / "ffpp")
    out = tmp_path / "bench"
    argv = ["benchmark", "ffpp-hq", "--model", str(tiny_model), "--data", str(root), "--out", str(out),
            "--workers", "0", "--no-progress", "--test-num-snippets", "2"]
    assert main(argv) == 1  # a partial download (6 of the 1000 reals...): results written, the shortfall reported
    captured = capsys.readouterr()
    printed = captured.out
    # of the 5000 videos the layout promises (1000 reals, 1000 per method) 10 are there, all test videos: the
    # metrics lack the other 138 test reals and 4 x 138 test fakes, not the 4280 train/val videos
    assert "the test data is incomplete: 690 test video(s) of ffpp-hq the dataset promises are missing" in captured.err
    assert "4280 video(s) of the --data root that ffpp-hq does not test" in captured.err
    assert "FaceForensics++ HQ (c23), split test: video level with U=2 x T=4" in printed
    assert "paper ACC (Table 1)" in printed and "frame AUC" in printed
    assert "690 test video(s) of the protocol that the dataset promises (its root's layout" in printed
    result = json.loads((out / "benchmark.json").read_text())
    assert result["data_kind"] == "video" and result["paper_metric"] == "accuracy"
    assert result["missing_videos"] == 138 + 4 * 138  # the test reals and each method's test fakes not on disk
    assert (result["missing_videos_not_tested"], result["missing_videos_split_unknown"]) == (4970 - 690, 0)
    markdown = (out / "benchmark.md").read_text()
    assert "- 690 test video(s) of the protocol that the dataset promises (its root's layout, or its official test set) " \
           "are missing" in markdown
    assert "- 4280 train/val (or untested) video(s) are missing on disk too: not used by this benchmark." in markdown
    rows = {r["subset"]: r for r in result["rows"]}
    with (out / "report_videos.csv").open() as f:
        videos = list(csv.DictReader(f))
    scores = [float(v["score"]) for v in videos]
    assert len(videos) == 10 and max(scores) - min(scores) < 1e-4  # one clip under ten names
    called_fake = scores[0] >= 0.5  # which side of 0.5 depends on the random tiny model only
    assert result["methods_missing"] == []
    assert list(rows) == ["Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures", "all methods"]
    for method, paper in (("Deepfakes", 1.0), ("Face2Face", 0.9929), ("FaceSwap", 1.0), ("NeuralTextures", 0.9643)):
        row = rows[method]
        assert (row["video"]["num_real"], row["video"]["num_fake"], row["paper"]) == (2, 2, paper)
        assert row["video"]["accuracy"] == 0.5 and 0 <= row["frame"]["auc"] <= 1
        # the per-method AUC is all reals against that method's fakes, from the per-video scores
        subset = [v for v in videos if v["method"] in ("", method)]
        assert row["video"]["auc"] == pytest.approx(
            roc_auc([float(v["score"]) for v in subset], [int(v["label"]) for v in subset]))
    all4 = rows["all methods"]
    assert (all4["video"]["num_real"], all4["video"]["num_fake"], all4["paper"], all4["video"]["accuracy"]) == (
        2, 8, None, 0.8 if called_fake else 0.2)
    with (out / "test_manifest.csv").open() as f:
        tested = list(csv.DictReader(f))
    assert len(tested) == 10 and all(FFPP_TEST_PAIR[0] in r["path"] or FFPP_TEST_PAIR[1] in r["path"] for r in tested)
    md = (out / "benchmark.md").read_text()
    assert "| Deepfakes | 0.5000 | " in md and " | 2 | 2 | 0 | 1.0000 |" in md and "Table 1" in md  # 0 failed
    # never overwrite an earlier result without --overwrite
    before = (out / "benchmark.json").read_text()
    assert main(argv) == 2 and "--overwrite" in capsys.readouterr().err
    assert (out / "benchmark.json").read_text() == before
    # the same partial download as a manifest file (the documented fast path): its rows name only what is on
    # disk, so the shortfall is counted against the official test split, and reported the same way
    manifest = tmp_path / "ffpp_c23.csv"
    assert main(["manifest", "ffpp", str(root), "--out", str(manifest)]) == 1
    capsys.readouterr()
    out2 = tmp_path / "bench_manifest"
    assert main([*argv[:argv.index("--data") + 1], str(manifest), "--out", str(out2),
                 *argv[argv.index("--out") + 2:]]) == 1
    err = capsys.readouterr()
    assert "lacks 690 of the videos of the complete FaceForensics++ HQ (c23) test set (138 real, 138 Deepfakes" in err.out
    assert json.loads((out2 / "benchmark.json").read_text())["missing_videos"] == 690


def write_sequence(folder, fake: bool, seed: int, frames: int = 8, size: int = 16):
    rng = np.random.default_rng(seed)
    base = rng.integers(60, 180, size=(size, size, 3))
    folder.mkdir(parents=True)
    for i in range(frames):
        gain = 1.0 + (rng.uniform(-0.4, 0.4) if fake else 0.0)
        Image.fromarray(np.clip(base * gain, 0, 255).astype(np.uint8)).save(folder / f"{i:04d}.png")


def test_wilddeepfake_train_then_benchmark_and_record(tiny_model, tmp_path, capsys):
    root = tmp_path / "wild"
    for folder, fake, n in (("real_train", False, 4), ("fake_train", True, 4), ("real_test", False, 3),
                            ("fake_test", True, 3)):
        for i in range(n):
            write_sequence(root / folder / str(i) / ("fake" if fake else "real") / "0", fake, seed=hash((folder, i)) % 999)
    manifest = tmp_path / "wild.csv"
    # 14 of the published 7,314 sequences: a shortfall, reported with exit code 1, the manifest written
    assert main(["manifest", "wilddeepfake", str(root), "--out", str(manifest), "--val-fraction", "0.25"]) == 1
    assert "7314" in capsys.readouterr().out and manifest.is_file()
    out = tmp_path / "bench"
    assert main(["benchmark", "wilddeepfake", "--model", str(tiny_model), "--data", str(manifest), "--out", str(out),
                 "--train", "--epochs", "1", "--batch-size", "2", "--num-snippets", "1", "--test-num-snippets", "2",
                 "--img-size", "16", "--workers", "0", "--no-progress", "--record"]) == 0
    printed = capsys.readouterr().out
    assert "training" in printed and "WildDeepfake" in printed
    result = json.loads((out / "benchmark.json").read_text())
    # trained off the paper's recipe: the table says where, beside the paper's number
    deviations = result["training_data"]["recipe_deviations"]
    assert deviations[:2] == ["epochs 1 (paper: 30)", "batch_size 2 (paper: 10)"] and "img_size 16 (paper: 224)" in deviations
    assert "training recipe, where it departs from the paper's: epochs 1 (paper: 30); batch_size 2" in printed
    assert "- Training recipe, where it departs from the paper's: epochs 1" in (out / "benchmark.md").read_text()
    assert result["data_kind"] == "frames" and result["model"] == str(out / "run" / "model")
    (row,) = result["rows"]
    assert (row["subset"], row["paper"], row["video"]["num_real"], row["video"]["num_fake"]) == ("WildDeepfake", 0.8511, 3, 3)
    with (out / "report_videos.csv").open() as f:
        videos = list(csv.DictReader(f))
    assert len(videos) == 6
    assert row["video"]["auc"] == pytest.approx(roc_auc([float(v["score"]) for v in videos], [int(v["label"]) for v in videos]))
    assert row["frame"]["num_real"] == 3 * 8 and row["frame"]["num_fake"] == 3 * 8  # U=2 x T=4 frames per video
    config = json.loads((out / "run" / "model" / "config.json").read_text())
    recorded = config["evaluation"][-1]
    assert (recorded["source"], recorded["data"], recorded["split"]) == ("dynsnip benchmark wilddeepfake", "WildDeepfake", "test")
    assert recorded["overall"]["auc"] == pytest.approx(row["video"]["auc"])
    # --overwrite replaces the results, and the training in run/ resumes: only on the rows it was trained on
    argv = ["benchmark", "wilddeepfake", "--model", str(tiny_model), "--out", str(out), "--train", "--epochs", "1",
            "--batch-size", "2", "--num-snippets", "1", "--test-num-snippets", "2", "--img-size", "16", "--workers", "0",
            "--no-progress", "--overwrite"]
    fewer = tmp_path / "fewer.csv"
    lines = manifest.read_text().splitlines()
    fewer.write_text("\n".join(lines[:-1] + [lines[-1].replace(",train,", ",val,")]) + "\n")
    assert main([*argv, "--data", str(fewer)]) == 2
    assert "was started on other data than this command's: train: " in capsys.readouterr().err
    assert (out / "benchmark.json").is_file() and (out / "test_manifest.csv").is_file()  # refused before removing
    # the manifest an earlier run wrote in --out, given as --data: refused before anything is removed
    assert main([*argv, "--data", str(out / "test_manifest.csv")]) == 2
    assert "is one of the files dynsnip benchmark writes in --out" in capsys.readouterr().err
    assert (out / "test_manifest.csv").is_file() and (out / "benchmark.json").is_file()


def test_a_dataset_root_of_videos_is_cropped_with_the_face_options_given(tiny_model, tmp_path, capsys):
    """benchmark takes predict's / evaluate's face options for video entries: a detector trained on
    crops of another margin or detector is tested on those crops, and the result records them."""
    root = ffpp_tree(tmp_path / "ffpp")
    common = ["benchmark", "ffpp-hq", "--model", str(tiny_model), "--data", str(root), "--workers", "0",
              "--no-progress", "--test-num-snippets", "2"]
    runs = {}
    for name, options in (("default", []), ("wide", ["--face-detector", "blazeface", "--margin", "2.0",
                                                     "--detect-every", "2"])):
        assert main([*common, "--out", str(tmp_path / name), *options]) == 1  # the partial download, as above
        capsys.readouterr()
        runs[name] = json.loads((tmp_path / name / "benchmark.json").read_text())
    default, wide = (runs[n]["test_protocol"]["face_crops"] for n in ("default", "wide"))
    assert (default["face_detector"], default["margin"], default["detect_every"]) == ("auto", 1.3, 4)
    assert (wide["face_detector"], wide["margin"], wide["detect_every"]) == ("blazeface", 2.0, 2)
    assert "AutoFaceDetector(" in default["detector"]  # the detector built, with its options, as faces.json names it
    assert "BlazeFace" in wide["detector"] and "Auto" not in wide["detector"]
    caption = (tmp_path / "wide" / "benchmark.md").read_text()
    assert "(video data, faces cropped on the fly by blazeface at margin 2, detection every 2 frames)" in caption
    scores = {}
    for n in runs:
        with (tmp_path / n / "report_videos.csv").open() as f:
            scores[n] = [float(v["score"]) for v in sorted(csv.DictReader(f), key=lambda v: v["id"])]
    assert len(scores["default"]) == len(scores["wide"]) == 10
    assert max(abs(a - b) for a, b in zip(scores["default"], scores["wide"])) > 1e-4  # other crops, other scores
    assert main([*common, "--out", str(tmp_path / "bad"), "--margin", "0"]) == 2
    assert "--margin must be a positive number" in capsys.readouterr().err
    assert not (tmp_path / "bad" / "benchmark.json").exists()


def test_benchmark_usage_errors(tiny_model, tmp_path, capsys):
    out = tmp_path / "b"
    assert main(["benchmark", "celebdf", "--model", str(tiny_model), "--data", str(tmp_path), "--out", str(out)]) == 2
    assert "Celeb-real is missing" in capsys.readouterr().err
    assert main(["benchmark", "celebdf", "--model", "dil_resnet18", "--data", str(tmp_path), "--out", str(out),
                 "--record"]) == 2
    assert "--record needs --model to be a local folder" in capsys.readouterr().err
    assert main(["benchmark", "ffpp-to-celebdf", "--train", "--data", str(tmp_path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "trains on ffpp" in err and "--train-data" in err
    assert not (out / "benchmark.json").exists()


def test_test_manifest_keeps_the_test_split_and_the_papers_methods(tmp_path):
    from dynsnip.engine.benchmark import write_test_manifest

    rows = [("r_test.mp4", 0, "test", ""), ("r_train.mp4", 0, "train", ""), ("df_test.mp4", 1, "test", "Deepfakes"),
            ("fsh_test.mp4", 1, "test", "FaceShifter"), ("df_train.mp4", 1, "train", "Deepfakes")]
    source = tmp_path / "m.csv"
    source.write_text("path,label,split,method\n" + "".join(f"{p},{y},{s},{m}\n" for p, y, s, m in rows))
    # a hand-made manifest records no dataset: scored only when vouched for
    out = write_test_manifest(PROTOCOLS["ffpp-hq"], source, tmp_path / "sub" / "t.csv", data_is="ffpp:c23")
    with out.open() as f:
        kept = [(r["path"], r["label"], r["split"], r["method"], r["dataset"]) for r in csv.DictReader(f)]
    assert kept == [(str(tmp_path / "r_test.mp4"), "0", "test", "", ""),
                    (str(tmp_path / "df_test.mp4"), "1", "test", "Deepfakes", "")]  # a vouch is not written as a record
    generic = tmp_path / "generic.csv"  # methods no dataset reader writes: nothing contradicts a vouch
    generic.write_text("path,label,split,method\n" + "".join(f"{p},{y},{s},x\n" for p, y, s, _ in rows))
    kept_celeb = write_test_manifest(PROTOCOLS["celebdf"], generic, tmp_path / "c.csv", data_is="celebdf:v2")
    assert len(kept_celeb.read_text().splitlines()) == 1 + 3  # not per method: every test row
    (tmp_path / "nomethod.csv").write_text("path,label,split\na.mp4,0,test\nb.mp4,1,test\n")
    only_real = tmp_path / "only_real.csv"
    only_real.write_text("path,label,split,method\na.mp4,0,test,\n")
    with pytest.raises(ValueError, match="method"):
        write_test_manifest(PROTOCOLS["ffpp-lq"], tmp_path / "nomethod.csv", tmp_path / "x.csv", data_is="ffpp:c40")
    with pytest.raises(ValueError, match="needs real and fake"):
        write_test_manifest(PROTOCOLS["celebdf"], only_real, tmp_path / "y.csv", data_is="celebdf:v2")


def test_ffpp_to_celebdf_scores_the_celebdf_test_list(tiny_model, tmp_path, capsys):
    from test_benchmarks_manifest import celebdf_tree

    root = celebdf_tree(tmp_path / "celeb")
    out = tmp_path / "bench"
    assert main(["benchmark", "ffpp-to-celebdf", "--model", str(tiny_model), "--data", str(root), "--out", str(out),
                 "--workers", "0", "--no-progress", "--test-num-snippets", "2", "--no-frame-level"]) == 1  # partial root
    printed = capsys.readouterr().out
    assert "paper AUC (Table 3)" in printed and "FF++ LQ (c40) -> Celeb-DF (v2)" in printed
    result = json.loads((out / "benchmark.json").read_text())
    (row,) = result["rows"]
    # the list's "1 YouTube-real/00170.mp4" and "1 Celeb-real/id0_0000.mp4" are the reals
    assert (row["subset"], row["paper"], row["video"]["num_real"], row["video"]["num_fake"]) == ("Celeb-DF", 0.7765, 2, 1)
    assert row["frame"] is None and "not computed" in result["frame_level"]
    assert result["data_provenance"] == f"built here from the dataset root {root} (data_manifest.csv): celebdf:v2"
    # the same videos in a manifest that records no dataset: scored only when vouched for, and said so
    plain = tmp_path / "plain.csv"
    with (out / "data_manifest.csv").open() as f:
        rows = list(csv.DictReader(f))
    with plain.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["path", "label", "split"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows({**r, "path": str(out / r["path"])} for r in rows)
    argv = ["benchmark", "ffpp-to-celebdf", "--model", str(tiny_model), "--data", str(plain), "--out", str(out),
            "--workers", "0", "--no-progress", "--test-num-snippets", "2", "--no-frame-level", "--overwrite"]
    assert main(argv) == 2 and "pass --data-is celebdf:v2" in capsys.readouterr().err
    assert main(argv + ["--data-is", "celebdf:v2"]) == 1  # 3 of the test list's 518 videos: reported as missing
    printed = capsys.readouterr().out
    assert "data: vouched for by --data-is celebdf:v2" in printed
    assert "lacks 515 of the videos of the complete FF++ LQ (c40) -> Celeb-DF (v2) test set (515 all)" in printed
    vouched = json.loads((out / "benchmark.json").read_text())
    assert vouched["rows"][0]["video"] == row["video"]


def test_a_protocol_trained_here_is_titled_by_what_it_trained_on():
    """ffpp-to-celebdf is the paper's FF++ LQ (c40) -> Celeb-DF; trained here on c23 crops, its table
    must not claim c40."""
    from dynsnip.cli.benchmark import trained_title
    from dynsnip.data.benchmarks.protocols import PROTOCOLS

    protocol = PROTOCOLS["ffpp-to-celebdf"]
    assert protocol.title == "FF++ LQ (c40) -> Celeb-DF (v2)"
    assert trained_title(protocol, ["ffpp:c23"]) == "FF++ HQ (c23) -> Celeb-DF (v2)"
    assert trained_title(protocol, ["ffpp:c40"]) == protocol.title
    assert trained_title(protocol, []) == "FF++ (not recorded in its manifest) -> Celeb-DF (v2)"
    assert trained_title(protocol, ["ffpp:c23", "ffpp:c40"]) == "FF++ (ffpp:c23, ffpp:c40) -> Celeb-DF (v2)"
    assert trained_title(PROTOCOLS["ffpp-hq"], ["ffpp:c23"]) == "FaceForensics++ HQ (c23)"


def celebdf_faces(folder, reals=2, fakes=2):
    """A faces.csv of Celeb-DF test crops (frame folders, as ``dynsnip extract-faces`` writes them)."""
    lines = ["path,label,split,method,dataset"]
    for i in range(reals):
        write_sequence(folder / f"id{i}_0000", fake=False, seed=i)
        lines.append(f"id{i}_0000,0,test,,celebdf:v2")
    for i in range(fakes):
        write_sequence(folder / f"id{i}_id9_0000", fake=True, seed=10 + i)
        lines.append(f"id{i}_id9_0000,1,test,Celeb-synthesis,celebdf:v2")
    (folder / "faces.csv").write_text("\n".join(lines) + "\n")
    return folder / "faces.csv"


def test_videos_extract_faces_could_not_crop_are_failures_of_the_benchmark(tiny_model, tmp_path, capsys):
    faces = celebdf_faces(tmp_path / "faces")
    (tmp_path / "faces" / "faces_failed.csv").write_text(
        "path,label,split,method,source,dataset,reason,message\n"
        "/data/celeb/Celeb-synthesis/id5_id9_0000.mp4,1,test,Celeb-synthesis,,celebdf:v2,corrupt,not a readable video\n"
        "/data/celeb/Celeb-real/id7_0000.mp4,0,train,,,celebdf:v2,no_face,no face found\n")  # not a test video
    out = tmp_path / "bench"
    assert main(["benchmark", "celebdf", "--model", str(tiny_model), "--data", str(faces), "--out", str(out),
                 "--workers", "0", "--no-progress", "--test-num-snippets", "2", "--img-size", "16"]) == 1
    captured = capsys.readouterr()
    assert "id5_id9_0000.mp4: corrupt" in captured.err and "id7_0000" not in captured.err
    result = json.loads((out / "benchmark.json").read_text())
    assert result["num_failed"] == 1 and result["failed"][0]["id"] == "/data/celeb/Celeb-synthesis/id5_id9_0000.mp4"
    assert result["rows"][0]["video"]["num_real"] == 2 and result["rows"][0]["video"]["num_fake"] == 2
    assert (result["failed"][0]["label"], result["failed"][0]["method"]) == (1, "Celeb-synthesis")
    assert result["rows"][0]["video"]["num_failed"] == 1 and result["failed_by_method"] == {"Celeb-synthesis": 1}
    assert json.loads((out / "report.json").read_text())["num_failed"] == 1
    markdown = (out / "benchmark.md").read_text()
    assert "Videos that could not be read or scored: 1." in markdown
    assert "| real | fake | failed | paper ACC" in markdown and "| 2 | 2 | 1 | 0.9961 |" in markdown
    with (out / "report.csv").open() as f:
        assert next(csv.DictReader(f))["num_failed"] == "1"


def test_evaluate_of_a_faces_csv_reports_the_videos_extract_faces_could_not_crop(tiny_model, tmp_path, capsys):
    faces = celebdf_faces(tmp_path / "faces")
    (tmp_path / "faces" / "faces_failed.csv").write_text(
        "path,label,split,method,source,dataset,reason,message\n"
        "/data/celeb/Celeb-synthesis/id5_id9_0000.mp4,1,test,Celeb-synthesis,,celebdf:v2,corrupt,not a readable video\n"
        "/data/celeb/Celeb-real/id7_0000.mp4,0,train,,,celebdf:v2,no_face,no face found\n")
    report = tmp_path / "report"
    assert main(["evaluate", "--model", str(tiny_model), "--manifest", str(faces), "--split", "test", "--workers", "0",
                 "--no-progress", "--num-snippets", "2", "--img-size", "16", "--out", str(report)]) == 1  # was 0
    captured = capsys.readouterr()
    assert "1 video(s) could not be read" in captured.err and "id5_id9_0000.mp4: corrupt" in captured.err
    data = json.loads(report.with_suffix(".json").read_text())
    assert data["num_failed"] == 1 and data["overall"]["num_videos"] == 4
    # without --split every failed row counts; with the failed list gone (a later run fixed them) none
    assert main(["evaluate", "--model", str(tiny_model), "--manifest", str(faces), "--workers", "0", "--no-progress",
                 "--num-snippets", "2", "--img-size", "16", "--out", str(report), "--overwrite"]) == 1
    assert json.loads(report.with_suffix(".json").read_text())["num_failed"] == 2
    # a manifest of the videos themselves in that folder scores them: its rows are not failures twice
    from dynsnip.engine.failures import extraction_failures

    videos = tmp_path / "faces" / "videos.csv"
    videos.write_text("path,label,split\n/data/celeb/Celeb-synthesis/id5_id9_0000.mp4,1,test\n")
    assert [f["id"] for f in extraction_failures(videos)] == ["/data/celeb/Celeb-real/id7_0000.mp4"]
    (tmp_path / "faces" / "faces_failed.csv").unlink()
    assert main(["evaluate", "--model", str(tiny_model), "--manifest", str(faces), "--workers", "0", "--no-progress",
                 "--num-snippets", "2", "--img-size", "16", "--out", str(report), "--overwrite"]) == 0


def test_a_failed_row_whose_video_a_listed_folder_holds_is_not_a_failure_too(tmp_path):
    """A faces.csv kept from an earlier run beside a later run's failed list (every video): the videos
    whose folders it lists are scored, so only the others count as not extracted."""
    from dynsnip.engine.failures import extraction_failures

    faces = celebdf_faces(tmp_path / "faces", reals=1, fakes=1)
    video = tmp_path / "celeb" / "id0_0000.mp4"  # gone since: the record's path is all there is
    (tmp_path / "faces" / "id0_0000" / "faces.json").write_text(json.dumps(
        {"source": "id0_0000.mp4", "source_file": {"path": str(video), "size": 1, "sha256_ends": "0"}}))
    (tmp_path / "faces" / "id0_id9_0000" / "faces.json").write_text(json.dumps({"source": "elsewhere.mp4"}))
    (tmp_path / "faces" / "faces_failed.csv").write_text(
        "path,label,split,method,source,dataset,reason,message\n"
        f"{video},0,test,,,celebdf:v2,stale_folder,made with other settings\n"
        f"{tmp_path / 'celeb' / 'id0_id9_0000.mp4'},1,test,Celeb-synthesis,,celebdf:v2,corrupt,not a video\n")
    assert [f["id"] for f in extraction_failures(faces)] == [str(tmp_path / "celeb" / "id0_id9_0000.mp4")]


def test_benchmark_with_nothing_scored_is_a_clean_failure(tiny_model, tmp_path, capsys):
    for name in ("a.mp4", "b.mp4"):
        (tmp_path / name).write_text("not a video")
    data = tmp_path / "broken.csv"
    data.write_text("path,label,split,method,dataset\na.mp4,0,test,,celebdf:v2\n"
                    "b.mp4,1,test,Celeb-synthesis,celebdf:v2\n")
    out = tmp_path / "bench"
    assert main(["benchmark", "celebdf", "--model", str(tiny_model), "--data", str(data), "--out", str(out),
                 "--workers", "0", "--no-progress", "--test-num-snippets", "2", "--img-size", "16"]) == 1
    err = capsys.readouterr().err
    assert "dynsnip benchmark: none of the 2 evaluation videos could be read or scored" in err
    assert "a.mp4" in err and "Traceback" not in err and not (out / "benchmark.json").exists()


def test_benchmark_never_overwrites_or_mixes_an_earlier_benchmarks_files(tiny_model, tmp_path, capsys):
    """Every file of an earlier benchmark (not only benchmark.json) is refused without --overwrite; with
    it, they are removed before the new ones are written, so a run that scores nothing leaves no old result
    beside its new manifests; a usage error with --overwrite removes nothing."""
    for name in ("a.mp4", "b.mp4"):
        (tmp_path / name).write_text("not a video")
    data = tmp_path / "broken.csv"
    data.write_text("path,label,split,method,dataset\na.mp4,0,test,,celebdf:v2\n"
                    "b.mp4,1,test,Celeb-synthesis,celebdf:v2\n")
    out = tmp_path / "bench"
    out.mkdir()
    argv = ["benchmark", "celebdf", "--model", str(tiny_model), "--data", str(data), "--out", str(out),
            "--workers", "0", "--no-progress", "--test-num-snippets", "2", "--img-size", "16"]
    for name in ("report.json", "report_videos.csv", "test_manifest.csv"):  # no benchmark.json: refused all the same
        (out / name).write_text("mine\n")
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert name in err and "--overwrite" in err and (out / name).read_text() == "mine\n"
        (out / name).unlink()
    old = {name: "earlier\n" for name in ("benchmark.json", "benchmark.md", "report.json", "report.csv",
                                           "report_videos.csv", "data_manifest.csv", "test_manifest.csv")}
    for name, text in old.items():
        (out / name).write_text(text)
    assert main(argv) == 2 and "benchmark.json, benchmark.md, report.json" in capsys.readouterr().err
    # refused before anything is scored, with --overwrite too: the earlier benchmark stays whole
    assert main(argv + ["--overwrite", "--threshold", "2"]) == 2
    assert main([*argv[:5], str(tmp_path / "nowhere.csv"), *argv[6:], "--overwrite"]) == 2
    capsys.readouterr()
    assert {p.name: p.read_text() for p in out.iterdir()} == old
    assert main(argv + ["--overwrite"]) == 1  # nothing scored: no result, and none of the earlier one
    assert "none of the 2 evaluation videos could be read" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["test_manifest.csv"]
    assert "a.mp4" in (out / "test_manifest.csv").read_text()


def test_an_interrupted_train_benchmark_restarts_over_its_own_manifests_but_not_over_a_result(tmp_path):
    from dynsnip.cli.benchmark import output_problem

    out = tmp_path / "bench"
    (out / "run").mkdir(parents=True)
    (out / "train_rows.csv").write_text("x\n")
    (out / "test_manifest.csv").write_text("x\n")
    assert output_problem(out, overwrite=False, resuming=True) is None  # dynsnip benchmark --train again: resumes
    assert "train_rows.csv" in output_problem(out, overwrite=False, resuming=False)
    (out / "report.csv").write_text("x\n")
    assert "report.csv" in output_problem(out, overwrite=False, resuming=True)
    assert output_problem(out, overwrite=True, resuming=True) is None
    (tmp_path / "file").write_text("x")
    assert "is a file" in output_problem(tmp_path / "file", overwrite=True, resuming=False)


def test_missing_videos_are_counted_for_the_videos_the_protocol_tests(tmp_path):
    """A partial download is judged by what the protocol scores: FF++ per-method protocols test the test
    split's reals and their methods' fakes; Celeb-DF's test list is its test set (its unnamed shortfall
    too), its folders' shortfall names no split."""
    from dynsnip.data.benchmarks import build_manifest
    from dynsnip.engine.benchmark import missing_counts
    from test_benchmarks_manifest import celebdf_tree

    root = ffpp_tree(tmp_path / "ffpp", methods=("Deepfakes", "FaceSwap"))
    ffpp = build_manifest("ffpp", root, methods=["Deepfakes", "FaceSwap"])
    assert ffpp.num_missing == 3 * (1000 - 6)
    # 140 test reals and 140 test fakes per method, 2 of each there; ffpp-to-ffpp-df tests Deepfakes only
    assert missing_counts(PROTOCOLS["ffpp-hq"], ffpp) == {"used": 3 * 138, "not_used": 3 * 856, "split_unknown": 0}
    assert missing_counts(PROTOCOLS["ffpp-to-ffpp-df"], ffpp) == {"used": 2 * 138, "not_used": 994 + 856 * 2,
                                                                  "split_unknown": 0}
    # training on it: the 720 + 140 train/val reals and fakes per method, 4 of each there
    assert missing_counts(PROTOCOLS["ffpp-hq"], ffpp, train=True) == {"used": 3 * 856, "not_used": 3 * 138,
                                                                       "split_unknown": 0}
    # DeepFakeDetection (an extra test set, no FF++ protocol scores it): its shortfall against its published
    # 363 + 3068 videos is no test video of ffpp-hq, nor training data
    link(root / "original_sequences/actors/c23/videos/01__kitchen.mp4")
    link(root / "manipulated_sequences/DeepFakeDetection/c23/videos/01_02__kitchen__ABC.mp4")
    dfd = build_manifest("ffpp", root, methods=["Deepfakes", "FaceSwap", "DeepFakeDetection"])
    for train in (False, True):
        counts, before = missing_counts(PROTOCOLS["ffpp-hq"], dfd, train=train), missing_counts(PROTOCOLS["ffpp-hq"], ffpp, train=train)
        assert counts == dict(before, not_used=before["not_used"] + 362 + 3067)
    celeb = build_manifest("celebdf", celebdf_tree(tmp_path / "celeb"))
    assert missing_counts(PROTOCOLS["celebdf"], celeb) == {"used": 518 - 3, "not_used": 0,
                                                           "split_unknown": 586 + 298 + 5635}


def test_test_manifest_keeps_each_fakes_source(tmp_path):
    """A fake keeps its source video, so that the benchmark crops it with the source's face boxes
    as `dynsnip evaluate` does."""
    from dynsnip.data.benchmarks import build_manifest
    from dynsnip.data.manifest import read_manifest
    from dynsnip.engine.benchmark import write_test_manifest

    root = ffpp_tree(tmp_path / "ffpp")
    full = build_manifest("ffpp", root).write(tmp_path / "all.csv")
    tested = read_manifest(write_test_manifest(PROTOCOLS["ffpp-hq"], full, tmp_path / "t.csv"))
    a, b = FFPP_TEST_PAIR
    fakes = [e for e in tested if e.label == 1]
    assert len(fakes) == 8
    for fake in fakes:
        target = fake.path.stem.split("_")[0]
        assert fake.source == root / f"original_sequences/youtube/c23/videos/{target}.mp4", fake


def test_ffpp_protocols_score_only_the_youtube_reals(tmp_path):
    """DeepFakeDetection's actors reals are not reals of the FF++ protocols (Table 1: the YouTube originals)."""
    from dynsnip.data.benchmarks import build_manifest
    from dynsnip.data.manifest import read_manifest
    from dynsnip.engine.benchmark import write_test_manifest
    from test_benchmarks_manifest import link

    methods = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures", "FaceShifter")
    root = ffpp_tree(tmp_path / "ffpp", methods=methods)
    link(root / "original_sequences/actors/c23/videos/01__kitchen_pan.mp4")
    link(root / "manipulated_sequences/DeepFakeDetection/c23/videos/01_02__kitchen_pan__ABCDEFGH.mp4")
    full = build_manifest("ffpp", root, methods=methods + ("DeepFakeDetection",)).write(tmp_path / "all.csv")
    for manifest in (full, tmp_path / "faces.csv"):
        if manifest.name == "faces.csv":  # crops named by the video (extract-faces): the method column tells
            lines = full.read_text().splitlines()
            crops = [l.split(",") for l in lines[1:]]
            manifest.write_text("\n".join([lines[0]] + [",".join([f"{c[3] or 'real'}/{Path(c[0]).stem}"] + c[1:])
                                                          for c in crops]) + "\n")
        tested = read_manifest(write_test_manifest(PROTOCOLS["ffpp-hq"], manifest, tmp_path / "t.csv", overwrite=True))
        reals = sorted(e.path.stem for e in tested if e.label == 0)
        assert reals == sorted(FFPP_TEST_PAIR), manifest  # the youtube originals of the test pair only
        assert {e.method for e in tested if e.label == 1} == {"Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures"}


def test_training_data_holding_test_videos_is_refused_before_training(tiny_model, tmp_path, capsys):
    rows = [("Celeb-real/id0_0000.mp4", 0, "test"), ("YouTube-real/00170.mp4", 0, "test"),
            ("Celeb-synthesis/id0_id1_0000.mp4", 1, "test"), ("Celeb-real/id1_0000.mp4", 0, "train"),
            ("Celeb-synthesis/id1_id0_0000.mp4", 1, "train")]
    for name, _, _ in rows:  # distinct files (their content does not matter: nothing is decoded)
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    data = tmp_path / "celeb.csv"
    data.write_text("path,label,split,method,dataset\n" + "".join(
        f"{n},{y},{s},{'Celeb-synthesis' if y else ''},celebdf:v2\n" for n, y, s in rows))
    leaky = tmp_path / "leaky.csv"  # the same videos, the test ones relabelled as training rows
    leaky.write_text(data.read_text().replace(",test,", ",train,"))
    out = tmp_path / "bench"
    assert main(["benchmark", "celebdf", "--model", str(tiny_model), "--train", "--train-data", str(leaky),
                 "--data", str(data), "--out", str(out), "--epochs", "1", "--workers", "0", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "3 test video(s) are also train/val rows of the training data" in err and "00170.mp4 (train)" in err
    assert not (out / "run").exists() and not (out / "benchmark.json").exists()
    # exit 2 = nothing was done: the test manifest written before the training data was checked is gone, so the
    # same command is refused for the leak again, not for "an earlier benchmark" in --out
    assert list(out.iterdir()) == []
    assert main(["benchmark", "celebdf", "--model", str(tiny_model), "--train", "--train-data", str(leaky),
                 "--data", str(data), "--out", str(out), "--epochs", "1", "--workers", "0", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "3 test video(s) are also train/val rows" in err and "earlier benchmark" not in err
    assert list(out.iterdir()) == []


def test_ffpp_training_rows_are_the_protocols_methods(tmp_path, capsys):
    from dynsnip.data.benchmarks import build_manifest
    from dynsnip.data.manifest import read_manifest
    from dynsnip.engine.benchmark import write_train_manifest

    methods = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures", "FaceShifter")
    full = build_manifest("ffpp", ffpp_tree(tmp_path / "ffpp", methods=methods), methods=methods).write(
        tmp_path / "all.csv")
    for name in ("ffpp-hq", "ffpp-to-celebdf"):
        path, note = write_train_manifest(PROTOCOLS[name], full, tmp_path / "rows.csv", overwrite=True)
        rows = read_manifest(path)
        assert {e.split for e in rows} == {"train", "val"} and sum(e.label == 0 for e in rows) == 4
        assert {e.method for e in rows if e.label} == {"Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures"}
        assert note.endswith("left out 4 of FaceShifter")
    assert write_train_manifest(PROTOCOLS["celebdf"], full, tmp_path / "x.csv") == (full, None)
    # fakes whose method is not recorded cannot be restricted: refused before training
    plain = tmp_path / "plain.csv"
    rows = [("r1", 0, "test", ""), ("f1", 1, "test", "Deepfakes"), ("r2", 0, "train", ""), ("f2", 1, "train", "")]
    for name, *_ in rows:
        (tmp_path / f"{name}.mp4").write_text(name)  # distinct files, never decoded
    plain.write_text("path,label,split,method,dataset\n" + "".join(f"{n}.mp4,{y},{s},{m},ffpp:c23\n"
                                                                     for n, y, s, m in rows))
    assert main(["benchmark", "ffpp-hq", "--model", "dil_resnet18", "--train", "--data", str(plain),
                 "--out", str(tmp_path / "b"), "--no-progress"]) == 2
    assert "trains on the methods Deepfakes, Face2Face, FaceSwap, NeuralTextures" in capsys.readouterr().err


def test_table_3_has_all_three_columns():
    to_dfdc, to_df = PROTOCOLS["ffpp-to-dfdc"], PROTOCOLS["ffpp-to-ffpp-df"]
    assert to_dfdc.paper()["values"] == {"DFDC": 0.6843} and to_df.paper()["values"] == {"Deepfakes": 0.9819}
    for p in (to_dfdc, to_df):  # trained as ffpp-to-celebdf: FF++ LQ, the four methods, 45 epochs
        assert (p.table, p.paper()["metric"], p.epochs, p.train_methods) == ("3", "auc", 45, PROTOCOLS["ffpp-hq"].rows)
        assert p.train_reader() == ("ffpp", {"compression": "c40"})
    assert (to_dfdc.data_tag, to_df.data_tag) == ("dfdc", "ffpp:c40")


def test_ffpp_to_ffpp_df_tests_the_deepfakes_fakes_against_the_reals(tmp_path):
    from dynsnip.data.benchmarks import build_manifest
    from dynsnip.data.manifest import read_manifest
    from dynsnip.engine.benchmark import _table_rows, write_test_manifest

    root = ffpp_tree(tmp_path / "ffpp", "c40")
    full = build_manifest("ffpp", root, compression="c40").write(tmp_path / "c40.csv")
    tested = read_manifest(write_test_manifest(PROTOCOLS["ffpp-to-ffpp-df"], full, tmp_path / "t.csv"))
    assert sorted((e.label, e.method or "") for e in tested) == [(0, ""), (0, ""), (1, "Deepfakes"), (1, "Deepfakes")]
    report = {"overall": {"auc": 1.0}, "per_method": {"Deepfakes": {"auc": 1.0}}}
    assert [r["subset"] for r in _table_rows(PROTOCOLS["ffpp-to-ffpp-df"], report, None)] == ["Deepfakes"]


def test_benchmark_train_keeps_a_recipe_files_model_and_pretrained_choice(tmp_path):
    """`benchmark --train --recipe FILE`: the file's model and pretrained choice are the defaults; before,
    the command always fixed pretrained=True (and so downloaded ImageNet weights the recipe had declined)."""
    import argparse

    from dynsnip.cli import benchmark as bench
    from dynsnip.cli.train import recipe_from_args
    from dynsnip.data.benchmarks.protocols import PROTOCOLS
    from dynsnip.engine import Recipe

    recipe_file = tmp_path / "recipe.json"
    recipe_file.write_text(json.dumps(Recipe(model="dil_resnet18", pretrained=False).to_dict()))
    parser = argparse.ArgumentParser()
    bench.add_parser(parser.add_subparsers())
    protocol = PROTOCOLS["celebdf"]
    common = ["benchmark", "celebdf", "--data", "x.csv", "--out", str(tmp_path / "o"), "--train", "--recipe", str(recipe_file)]
    args = parser.parse_args(common)
    recipe = recipe_from_args(args, **bench.recipe_overrides(args, protocol))
    assert (recipe.model, recipe.pretrained, recipe.epochs) == ("dil_resnet18", False, protocol.epochs)
    args = parser.parse_args(common + ["--model", "dil_resnet34"])
    assert recipe_from_args(args, **bench.recipe_overrides(args, protocol)).model == "dil_resnet34"
    recipe_file.write_text(json.dumps(Recipe(model="dil_resnet18", pretrained=True).to_dict()))
    args = parser.parse_args(common + ["--no-pretrained"])
    assert recipe_from_args(args, **bench.recipe_overrides(args, protocol)).pretrained is False
