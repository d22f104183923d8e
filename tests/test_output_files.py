"""Outputs are never lost or hidden: reports are not overwritten without a flag, the output
location is checked before the work, a hand-edited card is kept, and saved weights are
readable by whoever the umask lets read the other files."""
from __future__ import annotations

import json
import os
import stat

import pytest
import timm
import torch

import dynsnip
from dynsnip.cli import main
from dynsnip.engine.checkpoint import save_training_checkpoint

TINY = dict(channels=(8, 16, 32, 64), stem_width=8)


def tiny_model():
    return timm.create_model("dil_resnet18", num_classes=1, **TINY)


def test_predict_checks_the_output_folder_before_scoring(tmp_path, capsys, monkeypatch):
    import dynsnip.cli.predict as predict

    monkeypatch.setattr(predict, "predict_videos", lambda *a, **k: pytest.fail("scored before checking --output"))
    video = tmp_path / "v.mp4"
    video.write_bytes(b"x")
    for output, message in ((tmp_path / "missing_dir" / "r.json", "the folder {} does not exist"),
                            (tmp_path, "is a folder; expected a file name")):
        assert main(["predict", str(video), "--output", str(output), "--no-progress"]) == 2
        assert message.format(output.parent) in capsys.readouterr().err


def test_evaluate_refuses_to_overwrite_a_report_before_scoring(tmp_path, capsys):
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label\nv,real\n")
    (tmp_path / "report_videos.csv").write_text("keep me")
    # the model cannot even be built: the check comes first
    argv = ["evaluate", "--model", "no_such_model", "--manifest", str(manifest), "--out", str(tmp_path / "report")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "report_videos.csv exist(s); refusing to overwrite an earlier report (pass --overwrite)" in err
    assert (tmp_path / "report_videos.csv").read_text() == "keep me"
    assert main([*argv, "--overwrite"]) == 2
    assert "refusing to overwrite" not in capsys.readouterr().err  # now it gets as far as the model


def test_save_pretrained_keeps_a_hand_edited_card(tmp_path):
    model = tiny_model()
    dynsnip.save_pretrained(model, tmp_path)
    dynsnip.save_pretrained(model, tmp_path)  # its own card is replaced silently
    card = tmp_path / "README.md"
    card.write_text(card.read_text() + "\n## Notes by hand\nTrained on our data.\n")
    with pytest.warns(UserWarning, match=r"README.md was edited by hand .*: it is kept.*replace_card=True"):
        dynsnip.save_pretrained(model, tmp_path, license="mit")
    assert "Notes by hand" in card.read_text()
    dynsnip.save_pretrained(model, tmp_path, replace_card=True)
    assert "Notes by hand" not in card.read_text()


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_saved_files_follow_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        model = tiny_model()
        dynsnip.save_pretrained(model, tmp_path / "model")
        save_training_checkpoint(tmp_path / "checkpoint", model_state=model.state_dict(),
                                 optimizer_state=torch.optim.Adam(model.parameters()).state_dict(), state={"epoch": 1})
    finally:
        os.umask(old)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"model.safetensors", "optimizer.safetensors", "config.json", "state.json"}
    assert {p.relative_to(tmp_path).as_posix(): oct(stat.S_IMODE(p.stat().st_mode)) for p in files} == {
        p.relative_to(tmp_path).as_posix(): oct(mode) for p in files}


def test_a_failed_report_write_keeps_the_earlier_report_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    from dynsnip.cli.report_file import write_report

    report = tmp_path / "report.json"
    report.write_text("earlier")

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space left"):
        write_report(report, "new", overwrite=True)
    assert report.read_text() == "earlier" and sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]
    monkeypatch.undo()
    with pytest.raises(FileExistsError):
        write_report(report, "new", overwrite=False)
    write_report(report, "new", overwrite=True)
    assert report.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]
    fresh = tmp_path / "fresh.json"
    write_report(fresh, "x", overwrite=False)
    assert fresh.read_text() == "x" and stat.S_IMODE(fresh.stat().st_mode) == 0o666 & ~_umask()


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_dangling_link_at_the_output_is_refused_before_scoring(tmp_path, capsys, monkeypatch):
    import dynsnip.cli.predict as predict
    from dynsnip.cli.report_file import write_report

    monkeypatch.setattr(predict, "predict_videos", lambda *a, **k: pytest.fail("scored before checking --output"))
    video = tmp_path / "v.mp4"
    video.write_bytes(b"x")
    link = tmp_path / "report.json"
    link.symlink_to(tmp_path / "nowhere.json")
    assert main(["predict", str(video), "--output", str(link), "--no-progress"]) == 2
    assert "is a link to a missing file; refusing to overwrite it" in capsys.readouterr().err
    # with --overwrite the link's target gets the report, as writing through the link would
    write_report(link, "report", overwrite=True)
    assert link.is_symlink() and (tmp_path / "nowhere.json").read_text() == "report"


def test_the_same_weights_save_to_the_same_bytes(tmp_path):
    """The safetensors library writes the file's metadata from a hash map in a changing order: two saves of
    the same model differed in their bytes, so a SHA-256 could not check a rerun."""
    from dynsnip.hub import save_pretrained

    model = tiny_model()
    files = {(save_pretrained(model, tmp_path / str(i)) / "model.safetensors").read_bytes() for i in range(4)}
    assert len(files) == 1
