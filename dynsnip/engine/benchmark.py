"""A detector under one of the paper's protocols: the table of the paper, ours beside theirs.

:func:`check_protocol_data` checks that a manifest holds the protocol's dataset (its
recorded ``dataset`` column, or the user's ``data_is`` vouch for a manifest that records
none, never contradicted by its methods or folders; :mod:`dynsnip.data.benchmarks.provenance`),
:func:`write_test_manifest` selects the rows a protocol tests (the test split; for the FF++
protocols the real videos and the paper's four methods), :func:`run_benchmark` scores them
with :func:`~dynsnip.engine.evaluate.evaluate` (video level, the model's test U, paper U=8)
and, from the same forward pass, frame by frame (:mod:`dynsnip.engine.frame_level`), and
:func:`format_table` / :func:`markdown_table` / :func:`write_benchmark` render the result.

The data are whatever the manifest lists: face-frame folders (``dynsnip extract-faces``
output, or WildDeepfake's sequences: the fast path, faces found once) or video files (faces
detected while reading with :func:`~dynsnip.engine.data.make_dataset`'s default detector,
``auto``: BlazeFace, then MTCNN where it finds none, as ``dynsnip evaluate`` does by default;
for another detector, e.g. the paper's dlib on FF++, crop with ``dynsnip extract-faces
--face-detector ...`` first and benchmark its ``faces.csv``). The result says which.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from ..data.benchmarks.layout import BenchmarkManifest, BenchmarkRow
from ..data.benchmarks.protocols import Protocol
from ..data.benchmarks.provenance import check_provenance
from ..data.benchmarks.ffpp import DFD_REAL_METHOD
from ..data.manifest import ManifestEntry, read_manifest
from .evaluate import evaluate
from .failures import extraction_failures as failed_rows_beside, with_earlier_failures
from .frame_level import FrameScoreRecorder, frame_level_report
from .metrics import write_report
from .recipe import Recipe

__all__ = ["check_protocol_data", "write_test_manifest", "tested_entries", "is_dfd_real", "extraction_failures",
           "write_train_manifest", "check_no_test_leak", "run_benchmark", "format_table", "markdown_table", "write_benchmark",
           "result_paths", "missing_counts", "expected_test_videos", "test_set_shortfall", "FRAME_LEVEL_DEFINITION", "RESULT_NAME"]

RESULT_NAME = "benchmark"
FRAME_LEVEL_DEFINITION = (
    "frame level: each of the U*T sampled frames of every test video is one sample, scored by the detector's "
    "classifier on that frame's pooled features (the mean of a video's frame logits is its video logit); "
    "frames see their neighbours through the SIMs"
)


def check_protocol_data(protocol: Protocol, manifest: str | os.PathLike[str], data_is: str | None = None, *,
                        train: bool = False, flag: str = "--data-is") -> str:
    """Check that ``manifest`` holds ``protocol``'s test data (or with ``train``, its training
    data: the ``train`` and ``val`` rows, dataset only) before anything is scored; return how
    that is known, one line.

    Args:
        data_is: the tag the user vouches for (``celebdf:v2``) when the manifest records no
            dataset; a recorded one is never overridden.
        flag: the option that gives ``data_is``, for messages.

    Raises:
        ValueError: one line saying what was found and what the protocol needs (see
            :func:`~dynsnip.data.benchmarks.provenance.check_provenance`).
    """
    if train:
        entries = [e for e in read_manifest(manifest) if e.split in ("train", "val")]
        needed, purpose = protocol.train_tag, f"protocol {protocol.name} (training)"
    else:
        entries = read_manifest(manifest, split=protocol.split)
        needed, purpose = protocol.data_tag, f"protocol {protocol.name}"
    return check_provenance(entries, needed, source=manifest, purpose=purpose, vouched=data_is, flag=flag,
                            match_variant=not train)


def is_dfd_real(entry: ManifestEntry) -> bool:
    """Whether ``entry`` is a DeepFakeDetection real (an FF++ ``original_sequences/actors`` video):
    marked ``actors`` in the method column by ``dynsnip manifest ffpp`` (kept by ``extract-faces``),
    or, in a manifest written before that mark, by its path."""
    if entry.label != 0:
        return False
    if (entry.method or "").strip().lower() == DFD_REAL_METHOD:
        return True
    parts = Path(entry.path).parts
    return any(a == "original_sequences" and b == "actors" for a, b in zip(parts, parts[1:]))


def tested_entries(protocol: Protocol, entries: Sequence[ManifestEntry]) -> list[ManifestEntry]:
    """The ``entries`` ``protocol`` scores: all of them, or for a per-method (FF++) protocol the
    fakes of its methods and the real videos of FF++ itself (the YouTube originals: the reals of
    DeepFakeDetection, ``original_sequences/actors``, belong to that extra test set, not to the
    paper's Table 1)."""
    if not protocol.per_method:
        return list(entries)
    return [e for e in entries if (e.label == 0 and not is_dfd_real(e)) or (e.label == 1 and e.method in protocol.rows)]


def write_test_manifest(protocol: Protocol, manifest: str | os.PathLike[str], out: str | os.PathLike[str],
                        overwrite: bool = False, data_is: str | None = None) -> Path:
    """Write to ``out`` the rows of ``manifest`` that ``protocol`` tests (its split; for
    per-method protocols the reals and the fakes of its methods) and return ``out``, after
    :func:`check_protocol_data` (``data_is``: the user's vouch for a manifest that records
    no dataset). The recorded ``dataset`` column is kept; a vouch is not written as one.

    Raises:
        ValueError: the manifest is not the protocol's dataset, no such rows, or a per-method
            protocol on a manifest without methods.
    """
    check_protocol_data(protocol, manifest, data_is)
    entries = read_manifest(manifest, split=protocol.split)
    if protocol.per_method and any(e.label == 1 and not e.method for e in entries):
        raise ValueError(f"{manifest}: protocol {protocol.name} scores each manipulation method, but some fakes "
                         "have no 'method' (write the manifest with `dynsnip manifest ffpp`)")
    entries = tested_entries(protocol, entries)
    if not any(e.label == 0 for e in entries) or not any(e.label == 1 for e in entries):
        raise ValueError(f"{manifest}: protocol {protocol.name} needs real and fake videos in split "
                         f"{protocol.split!r}" + (f" (methods {', '.join(protocol.rows)})" if protocol.per_method else "")
                         + f"; found {sum(e.label == 0 for e in entries)} real, {sum(e.label == 1 for e in entries)} fake")
    rows = [BenchmarkRow(Path(e.path), e.label, e.split or protocol.split, e.method or "", e.source) for e in entries]
    recorded = {e.dataset for e in entries}
    tag = recorded.pop() if len(recorded) == 1 and None not in recorded else ""
    return BenchmarkManifest(protocol.title, Path(manifest), rows, [], tag=tag).write(out, overwrite=overwrite)


def write_train_manifest(protocol: Protocol, manifest: str | os.PathLike[str], out: str | os.PathLike[str],
                         overwrite: bool = False) -> tuple[Path, str | None]:
    """The ``train`` / ``val`` rows of ``manifest`` that ``protocol`` trains on, and one line
    saying which (None: every row, the protocol names no methods).

    With :attr:`~dynsnip.data.benchmarks.protocols.Protocol.train_methods` (the FF++
    protocols: the paper's four methods), the rows are the reals (not DeepFakeDetection's
    actors) and the fakes of those methods, written to ``out``; a manifest that also holds
    FaceShifter or DeepFakeDetection does not widen the training set. Otherwise ``manifest``
    itself is returned.

    Raises:
        ValueError: a train / val fake has no ``method`` (its manipulation cannot be told), or
            no rows are left.
    """
    if protocol.train_methods is None:
        return Path(manifest), None
    methods = protocol.train_methods
    entries = [e for e in read_manifest(manifest) if e.split in ("train", "val")]
    unnamed = [e for e in entries if e.label == 1 and not e.method]
    if unnamed:
        raise ValueError(f"{manifest}: protocol {protocol.name} trains on the methods {', '.join(methods)}, but "
                         f"{len(unnamed)} train/val fake(s) have no 'method' (e.g. {unnamed[0].path}); expected the "
                         "method of every fake (write the manifest with `dynsnip manifest ffpp`)")
    kept = [e for e in entries if (e.label == 0 and not is_dfd_real(e)) or (e.label == 1 and e.method in methods)]
    left_out: dict[str, int] = {}
    for e in entries:
        if not ((e.label == 0 and not is_dfd_real(e)) or (e.label == 1 and e.method in methods)):
            name = e.method if e.label == 1 else "DeepFakeDetection reals (actors)"
            left_out[name] = left_out.get(name, 0) + 1
    if not kept:
        raise ValueError(f"{manifest}: no train/val rows of protocol {protocol.name}'s methods {', '.join(methods)}")
    recorded = {e.dataset for e in kept}
    tag = recorded.pop() if len(recorded) == 1 and None not in recorded else ""
    rows = [BenchmarkRow(Path(e.path), e.label, e.split or "train", e.method or "", e.source) for e in kept]
    path = BenchmarkManifest(protocol.title, Path(manifest), rows, [], tag=tag).write(out, overwrite=overwrite)
    note = (f"train/val rows: the reals and the fakes of {', '.join(methods)} (protocol {protocol.name})"
            + ("; left out " + ", ".join(f"{n} of {m}" for m, n in sorted(left_out.items())) if left_out else ""))
    return path, note


def check_no_test_leak(test_paths: Sequence[str | os.PathLike[str]], manifest: str | os.PathLike[str],
                       show: int = 3) -> None:
    """Refuse training data whose ``train`` / ``val`` rows hold a test video: a detector trained
    on its test set scores it well for the wrong reason. Paths are compared with links
    resolved; a video and its extracted face folder are different paths and are not matched.

    Raises:
        ValueError: how many test videos are train / val rows of ``manifest``, the first ``show`` named.
    """
    tested = {os.path.realpath(p) for p in test_paths}
    leaked = [e for e in read_manifest(manifest) if e.split in ("train", "val") and os.path.realpath(e.path) in tested]
    if leaked:
        named = ", ".join(f"{e.path} ({e.split})" for e in leaked[:show]) + (
            f" and {len(leaked) - show} more" if len(leaked) > show else "")
        raise ValueError(f"{len(leaked)} test video(s) are also train/val rows of the training data {manifest}: {named}; "
                         "expected training data without the test videos (remove them, or give a --train-data "
                         "without them)")


def missing_counts(protocol: Protocol, manifest: BenchmarkManifest, train: bool = False) -> dict[str, int]:
    """How many of the videos a dataset root's layout promises are missing on disk, by whether
    ``protocol`` uses them: ``used`` (its test videos: its split and, for the FF++ protocols, the
    reals and its methods, as :func:`tested_entries`; with ``train``, its train / val rows, as
    :func:`write_train_manifest` keeps them), ``not_used`` (the other splits and methods: not in
    this benchmark's metrics) and ``split_unknown`` (a shortfall against a published count, which
    names no video and no split: WildDeepfake's 7,314 sequences, Celeb-DF's folders, which also
    hold its test videos; some may be used). A group of one split (Celeb-DF's test list) counts its
    unnamed shortfall as that split's, where the protocol scores every video of it."""
    splits = ("train", "val") if train else (protocol.split,)
    rows = manifest.missing_rows
    entries = [ManifestEntry(r.path, r.label, r.split, r.method or None, r.source) for r in rows]
    if train:
        methods = protocol.train_methods
        used = [e for e in entries if e.split in splits and (
            methods is None or (e.label == 0 and not is_dfd_real(e)) or (e.label == 1 and e.method in methods))]
    else:
        used = tested_entries(protocol, [e for e in entries if e.split in splits])
    counts = {"used": len(used), "not_used": len(rows) - len(used), "split_unknown": 0}
    every_row = protocol.train_methods is None if train else not protocol.per_method
    tested_methods = (protocol.train_methods if train else protocol.rows) if (
        protocol.per_method or (train and protocol.train_methods is not None)) else None
    for item in manifest.inventory:  # shortfalls that name no video
        unnamed = max(0, item.num_missing - len(item.missing_rows))
        if item.method is not None and tested_methods is not None and item.method not in tested_methods:
            counts["not_used"] += unnamed  # a whole group of another method (DeepFakeDetection): never used here
        elif item.split is not None and every_row:
            counts["used" if item.split in splits else "not_used"] += unnamed
        else:
            counts["split_unknown"] += unnamed
    counts["split_unknown"] += sum(manifest.left_out.values())  # on disk, but unlabelled or not extracted
    return counts


def expected_test_videos(protocol: Protocol) -> dict[str, int] | None:
    """How many videos ``protocol`` tests in its dataset's complete, official test set, by group
    (``"real"`` and each method of a per-method protocol; ``"all"`` otherwise), or None where no
    such count is fixed: FF++'s test split has 2 x 70 reals and as many fakes per method (its
    official ``test.json``), Celeb-DF v2's test list 518 videos; DFDC (the preview's test split or
    the public test set, by root) and WildDeepfake (its test sequences) have none here."""
    if protocol.dataset == "ffpp" and protocol.per_method:
        from ..data.benchmarks.ffpp import official_splits

        videos = 2 * len(official_splits()[protocol.split])
        return {"real": videos, **{method: videos for method in protocol.rows}}
    if protocol.dataset == "celebdf" and protocol.split == "test":
        from ..data.benchmarks.celebdf import EXPECTED

        return {"all": EXPECTED[protocol.options.get("version", "v2")]["test list"]}
    return None


def test_set_shortfall(protocol: Protocol, tested: Sequence[ManifestEntry],
                       failed: Sequence[Mapping[str, str]] = ()) -> dict[str, int]:
    """The videos of the complete test set (:func:`expected_test_videos`) that a manifest does not
    hold, by group: a manifest file (``benchmark --data FILE``) names only the videos it has, so a
    partial download or a partial manifest is found by its count. ``tested``: the manifest's rows
    the protocol tests; ``failed``: the tested rows extract-faces could not crop (counted as held:
    they are reported as failures already). Empty where the test set is complete, or no count is
    fixed."""
    expected = expected_test_videos(protocol)
    if expected is None:
        return {}
    held: dict[str, int] = {group: 0 for group in expected}
    groups = [("real" if e.label == 0 else e.method) if protocol.per_method else "all" for e in tested]
    groups += [("real" if str(f.get("label")) in ("0", "real") else f.get("method")) if protocol.per_method else "all"
               for f in failed]
    for group in groups:
        if group in held:
            held[group] += 1
    return {group: expected[group] - held[group] for group in expected if held[group] < expected[group]}


def extraction_failures(protocol: Protocol, manifest: str | os.PathLike[str]) -> list[dict[str, str]]:
    """The videos ``protocol`` tests that never reached ``manifest``: the rows of the
    ``faces_failed.csv`` beside it in the protocol's split and subsets
    (:func:`~dynsnip.engine.failures.extraction_failures`). A benchmark on the crops that did
    extract must not read as one on the whole test set, so these count as videos that could not
    be read."""
    return failed_rows_beside(manifest, protocol.split, keep=lambda entries: tested_entries(protocol, entries))


def _metrics(m: dict[str, Any] | None) -> dict[str, Any] | None:
    """A table row's metrics. Over one class (no real, or no fake video scored: every one of the
    other class failed) the accuracy is that class's share called right, not the protocol's
    accuracy: it is left out (None), as the AUC is undefined, and :func:`one_class_notes` says why."""
    if m is None:
        return None
    row = {k: m.get(k) for k in ("auc", "accuracy", "num_real", "num_fake", "num_failed")}
    if (row["num_real"] or 0) == 0 or (row["num_fake"] or 0) == 0:
        row["accuracy"] = None
    return row


def one_class_notes(result: dict[str, Any]) -> list[str]:
    """One line per table row whose scored videos are of one class (accuracy and AUC not shown)."""
    notes = []
    for row in result["rows"]:
        video = row["video"] or {}
        real, fake = video.get("num_real") or 0, video.get("num_fake") or 0
        if (real or fake) and not (real and fake):
            scored, missing = ("real", "fake") if real else ("fake", "real")
            notes.append(f"{row['subset']}: only {real or fake} {scored} video(s) were scored, no {missing} one: an "
                         "accuracy over one class is not the protocol's, so neither it nor the AUC is given")
    return notes


def _table_rows(protocol: Protocol, report: dict[str, Any], frames: dict[str, Any] | None) -> list[dict[str, Any]]:
    paper = protocol.paper()["values"]
    rows = []
    if protocol.per_method:
        for method in protocol.rows:
            rows.append({"subset": method, "video": _metrics(report["per_method"].get(method)),
                         "frame": _metrics(frames["per_method"].get(method)) if frames else None,
                         "paper": paper.get(method)})
        if len(protocol.rows) > 1:  # one method (ffpp-to-ffpp-df): its row is already all of them
            rows.append({"subset": "all methods", "video": _metrics(report["overall"]),
                         "frame": _metrics(frames["overall"]) if frames else None, "paper": None})
    else:
        rows.append({"subset": protocol.rows[0], "video": _metrics(report["overall"]),
                     "frame": _metrics(frames["overall"]) if frames else None, "paper": paper.get(protocol.rows[0])})
    return rows


def run_benchmark(
    protocol: Protocol,
    model: torch.nn.Module,
    manifest: str | os.PathLike[str],
    recipe: Recipe,
    *,
    device: str | torch.device | None = None,
    threshold: float = 0.5,
    frame_level: bool = True,
    progress: bool = True,
    faces: str = "all",
    video_score: str = "max",
    failed_before: Sequence[Mapping[str, str]] = (),
    video_crops: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Score ``manifest`` (from :func:`write_test_manifest`) with ``model`` under ``protocol``.

    Evaluation clips: ``recipe.test_num_snippets`` snippets of ``recipe.snippet_len`` frames
    at ``recipe.img_size`` px, batches of ``recipe.batch_size``, ``recipe.num_workers``
    loader processes. One process (frame scores are matched to videos in order). ``faces``:
    every face track of each video (``"all"``: reduced to the video's score by
    ``video_score``, max or mean) or its largest face (``"largest"``). ``failed_before``:
    test videos that failed before this run (:func:`extraction_failures`), reported first
    among the failures. ``video_crops``: how video entries are cropped, the keyword
    arguments of :func:`~dynsnip.engine.data.make_dataset` (``face_detector``,
    ``detector_options``, ``margin``, ``detect_every``, ``min_face_coverage``; default: its
    defaults); recorded in the result's ``test_protocol`` when the entries are videos.

    Returns:
        the result: ``rows`` (per subset: ``video`` and ``frame`` metrics, ``paper``),
        ``report`` (the full video-level report), ``predictions``, test protocol, failures.
    """
    from ..data.datasets import FaceFramesDataset
    from .data import make_dataset

    crops = dict(video_crops or {})
    dataset = make_dataset(manifest, model, recipe, train=False, faces=faces, **crops)
    kind = "frames" if isinstance(dataset, FaceFramesDataset) else "video"
    test_protocol = {"num_snippets": recipe.test_num_snippets, "snippet_len": recipe.snippet_len,
                     "img_size": recipe.img_size, "threshold": threshold, "faces": faces, "video_score": video_score}
    if kind == "video":  # the crops were made here: how (a frame folder's are recorded in the folder)
        test_protocol["face_crops"] = _face_crops(dataset, crops)
    scorer = FrameScoreRecorder(model) if frame_level else model
    result = evaluate(scorer, dataset, batch_size=recipe.batch_size, device=device, amp=recipe.amp,
                      num_workers=recipe.num_workers, threshold=threshold, progress=progress, desc=protocol.name,
                      video_score=video_score)
    frames, frame_note = None, "not computed (--no-frame-level)"
    if frame_level:
        try:
            frames = frame_level_report(scorer.frame_logits, result.predictions, threshold)
            frame_note = FRAME_LEVEL_DEFINITION
        except ValueError as err:
            frame_note = f"not available: {err}"
    report = with_earlier_failures(result.report, failed_before)
    paper = protocol.paper()
    return {
        "protocol": protocol.name,
        "module_config": _module_config(model),
        "title": protocol.title,
        "split": protocol.split,
        "manifest": str(manifest),
        "data_kind": kind,
        "test_protocol": test_protocol,
        "paper_metric": paper["metric"],
        "paper_source": paper["source"],
        "frame_level": frame_note,
        "methods_missing": [m for m in protocol.rows if m not in result.report["per_method"]] if protocol.per_method else [],
        "rows": _table_rows(protocol, report, frames),  # with the earlier failures in its failed counts
        "report": report,
        "frame_report": frames,
        "predictions": result.predictions,
        "num_failed": report["num_failed"],
        "failed": report["failed"],
        "tracks_not_scored": report.get("tracks_not_scored", []),
        "failed_by_method": report.get("failed_by_method", {}),
    }


def _face_crops(dataset: Any, crops: Mapping[str, Any]) -> dict[str, Any]:
    """How the video entries of ``dataset`` were cropped, read from its clip loader (what cropped them):
    the detector's name (``--face-detector``), the detector as ``faces.json`` names one (its repr, with
    its options), the margin, the detection cadence and the coverage threshold."""
    from ..data.faces.extraction import detector_setting

    loader = dataset.loader
    name = crops.get("face_detector", "auto")
    return {"face_detector": name if isinstance(name, str) else detector_setting(name),
            "detector": detector_setting(loader.face_detector),
            "detector_options": dict(crops.get("detector_options") or {}),
            "margin": loader.margin, "detect_every": loader.detect_every,
            "min_face_coverage": loader.min_face_coverage}


def _module_config(model: torch.nn.Module) -> str | None:
    """``"paper"``, ``"default"`` or ``"custom"``: the DIL module ``model`` is (from its ``dil_args``)."""
    from ..models.paper_configs import module_configuration

    return module_configuration(model) if isinstance(getattr(model, "dil_args", None), dict) else None


def _module_note(result: dict[str, Any]) -> str:
    """What the table's module configuration means (which one reproduces the paper)."""
    from ..models.paper_configs import MODULE_CONFIGS

    name = result.get("module_config")
    if name in MODULE_CONFIGS:
        return f"module configuration '{name}': {MODULE_CONFIGS[name]}" + (
            "; the configuration that reproduces the paper" if name == "paper" else
            "; ours, not the paper's (train with --config paper to reproduce the paper)")
    if name == "custom":
        return "module configuration 'custom': neither the paper's module nor dynsnip's default (see the model's dil_args)"
    return "module configuration unknown"


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _cells(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    metric = "ACC" if result["paper_metric"] == "accuracy" else "AUC"
    header = ["subset", "video ACC", "video AUC", "frame AUC", "real", "fake", "failed",
              f"paper {metric} (Table {result['paper_source']['table']})"]
    body = []
    by_method = result.get("failed_by_method") or {}
    for row in result["rows"]:
        video, frame = row["video"] or {}, row["frame"] or {}
        failed = video.get("num_failed")
        if failed is None and row["video"] is None and by_method:  # a method none of whose fakes was scored
            failed = by_method.get("real", 0) + by_method.get(row["subset"], 0)
        body.append([row["subset"], _fmt(video.get("accuracy")), _fmt(video.get("auc")), _fmt(frame.get("auc")),
                     _fmt(video.get("num_real")), _fmt(video.get("num_fake")), _fmt(failed), _fmt(row["paper"])])
    return header, body


def _missing_methods_note(result: dict[str, Any]) -> str:
    """Which methods have no scored test fake, and how many of their fakes failed."""
    by_method = result.get("failed_by_method") or {}
    named = ", ".join(m + (f" ({by_method[m]} test fake(s) could not be scored)" if by_method.get(m) else "")
                      for m in result["methods_missing"])
    return f"no scored test fakes of {named}: 'all methods' covers the others only"


def _caption(result: dict[str, Any]) -> str:
    t = result["test_protocol"]
    crops = t.get("face_crops")
    faces = (f", faces cropped on the fly by {crops['face_detector']} at margin {crops['margin']:g}"
             + (f", detection every {crops['detect_every']} frames" if crops.get("detect_every") else "")
             if crops else "")
    return (f"{result['title']}, split {result['split']}: video level with U={t['num_snippets']} x "
            f"T={t['snippet_len']} at {t['img_size']} px, threshold {t['threshold']} ({result['data_kind']} data{faces}); "
            f"model {result.get('model', '?')}" + (f" ({result['module_config']} module)" if result.get("module_config") else ""))


def _missing_notes(result: dict[str, Any]) -> list[str]:
    """What the --data root's layout promises that is missing on disk: the test videos (not in the
    metrics), those of unknown split, and the others (not used by this benchmark), one line each."""
    notes = []
    if result.get("missing_videos"):
        notes.append(f"{result['missing_videos']} test video(s) of the protocol that the dataset promises (its root's "
                     "layout, or its official test set) are missing (a partial download?): not in the metrics")
    if result.get("missing_videos_split_unknown"):
        notes.append(f"{result['missing_videos_split_unknown']} video(s) short of the dataset's published counts are "
                     "missing on disk as well; the layout names none, so their split is unknown (they may include "
                     "test videos, or be the ones counted above)")
    if result.get("missing_videos_not_tested"):
        notes.append(f"{result['missing_videos_not_tested']} train/val (or untested) video(s) are missing on disk too: "
                     "not used by this benchmark")
    return notes


def format_table(result: dict[str, Any]) -> str:
    """The result as a text table with the paper's column beside ours."""
    header, body = _cells(result)
    widths = [max(len(r[i]) for r in [header] + body) for i in range(len(header))]
    lines = [_caption(result), "  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths)))]
    lines += ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))) for row in body]
    if result["methods_missing"]:
        lines.append(_missing_methods_note(result))
    lines += one_class_notes(result)
    lines.append(_module_note(result))
    lines.append(f"frame AUC: {result['frame_level']}")
    if result.get("data_provenance"):
        lines.append(f"data: {result['data_provenance']}")
    lines.append(f"paper: {result['paper_source']['paper']}, Table {result['paper_source']['table']}, row "
                 f"'{result['paper_source']['row']}' ({result['paper_source']['metric_source']})")
    if result["num_failed"]:
        lines.append(f"{result['num_failed']} video(s) could not be read or scored and are not in the metrics "
                     "(see benchmark.json)")
    if unscored := result.get("tracks_not_scored"):
        lines.append(f"{len(unscored)} face track(s) of {len({t['id'] for t in unscored})} scored video(s) were not "
                     "scored; those videos are scored on their other faces (tracks_not_scored in benchmark.json)")
    lines += _missing_notes(result)
    if (result.get("training_data") or {}).get("rows"):
        lines.append(f"training: {result['training_data']['rows']}")
    if deviations := (result.get("training_data") or {}).get("recipe_deviations"):
        lines.append(f"training recipe, where it departs from the paper's: {'; '.join(deviations)}")
    return "\n".join(lines)


def markdown_table(result: dict[str, Any]) -> str:
    """The result as Markdown: caption, table, notes."""
    header, body = _cells(result)
    lines = [f"**{_caption(result)}**", "", "| " + " | ".join(header) + " |",
             "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    source = result["paper_source"]
    lines += ["", f"- Module: {_module_note(result)}.", f"- Frame AUC: {result['frame_level']}."]
    if result.get("data_provenance"):
        lines.append(f"- Data: {result['data_provenance']}.")
    lines += [f"- Paper: {source['paper']}; Table {source['table']} ({source['caption']}), row '{source['row']}'. "
              f"Metric: {source['metric_source']}. {source['page']}.",
              f"- Videos that could not be read or scored: {result['num_failed']}."]
    if unscored := result.get("tracks_not_scored"):
        lines.append(f"- Face tracks not scored in videos scored on their other faces: {len(unscored)} "
                     f"(of {len({t['id'] for t in unscored})} video(s)).")
    lines += [f"- {note[0].upper()}{note[1:]}." for note in _missing_notes(result)]
    if (result.get("training_data") or {}).get("rows"):
        lines.append(f"- Training: {result['training_data']['rows']}.")
    if deviations := (result.get("training_data") or {}).get("recipe_deviations"):
        lines.append(f"- Training recipe, where it departs from the paper's: {'; '.join(deviations)}.")
    if result["methods_missing"]:
        note = _missing_methods_note(result)
        lines.append(f"- {note[0].upper()}{note[1:]}.")
    lines += [f"- {note}." for note in one_class_notes(result)]
    return "\n".join(lines) + "\n"


def result_paths(out_dir: str | os.PathLike[str]) -> list[Path]:
    """The files :func:`write_benchmark` writes in ``out_dir``: ``benchmark.json``, ``benchmark.md``
    and the per-video report (``report.json``, ``report.csv``, ``report_videos.csv``)."""
    from .metrics import report_paths

    out_dir = Path(out_dir)
    return [out_dir / f"{RESULT_NAME}.json", out_dir / f"{RESULT_NAME}.md", *report_paths(out_dir / "report")]


def write_benchmark(result: dict[str, Any], out_dir: str | os.PathLike[str], overwrite: bool = False) -> list[Path]:
    """``out_dir/benchmark.json`` and ``.md``, plus the per-video report of
    :func:`~dynsnip.engine.metrics.write_report` (``report.json``, ``report.csv``,
    ``report_videos.csv``).

    Raises:
        FileExistsError: one of these files exists and ``overwrite`` is False (nothing written).
    """
    out_dir = Path(out_dir)
    json_path, md_path = out_dir / f"{RESULT_NAME}.json", out_dir / f"{RESULT_NAME}.md"
    existing = [str(p) for p in result_paths(out_dir) if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{', '.join(existing)} exist(s); refusing to overwrite an earlier benchmark "
                              "(pass --overwrite to replace it)")
    for path in result_paths(out_dir):  # none of the earlier result stays beside this one (e.g. its _videos.csv)
        path.unlink(missing_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    report_paths = write_report(dict(result["report"], model=result.get("model")), out_dir / "report",
                                result["predictions"])
    summary = {k: v for k, v in result.items() if k not in ("report", "predictions")}
    from ..hub.records import json_safe

    json_path.write_text(json.dumps(json_safe(summary), indent=2) + "\n", encoding="utf-8")
    md_path.write_text(markdown_table(result), encoding="utf-8")
    return [json_path, md_path, *report_paths]
