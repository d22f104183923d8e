"""Resuming a training run: only into the model it was started with (its build options are in the
checkpoint, and a state-dict mismatch is reported as another model, not as a damaged file),
checkpoints flushed to disk before they are swapped in, and a run killed before its first
checkpoint started again by the same call."""
from __future__ import annotations

import json
import os
import shutil

import pytest
import torch

import dynsnip  # noqa: F401  (registers dil_*)
from dynsnip.cli import main
from dynsnip.engine import build_model
from dynsnip.engine.checkpoint import save_training_checkpoint
from dynsnip.engine.run_lock import LOCK_NAME
from test_cli_train import TINY_ARGS, manifest  # noqa: F401 (fixture)
from test_engine_train import TINY, Clips, run, tiny_recipe


def snapshot(folder) -> dict[str, bytes]:
    """Every file under ``folder`` (relative name -> bytes), the lock file aside (it names the latest
    holder): what a refused resume must not change."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != LOCK_NAME}


def stopped_after_epoch_1(out):
    run(tiny_recipe(epochs=2), out, stop_after_epoch=1)
    return snapshot(out)


# ------------------------------------------------------------ 1: the model's build options
def _train(out, model_kwargs, model=None, log=None):
    from dynsnip.engine import train

    return train(tiny_recipe(epochs=2), Clips(), None, out, model=model, model_kwargs=model_kwargs, device="cpu",
                 progress=False, log=log)


def test_resume_with_other_model_kwargs_is_refused_naming_each_option(tmp_path):
    """drop_rate keeps every weight's shape: the resumed run used to continue silently with another model."""
    out = tmp_path / "run"
    before = stopped_after_epoch_1(out)
    with pytest.raises(ValueError) as caught:
        _train(out, dict(TINY, drop_rate=0.5))
    message = str(caught.value)
    assert "the model being resumed is not the one this run was started with" in message
    assert "drop_rate was not given, now 0.5" in message
    assert "--model-arg" in message and "another --out" in message
    assert "starts the run over" not in message  # the run is fine: no advice to replace it
    assert snapshot(out) == before  # refused before anything was written

    with pytest.raises(ValueError, match=r"channels was \[8, 16, 32, 64\], now \[8, 16, 32, 32\]"):
        _train(out, dict(TINY, channels=(8, 16, 32, 32)))
    assert snapshot(out) == before
    assert _train(out, TINY).resumed_from == 1  # the options it was started with: resumed


def test_resume_of_a_ready_made_model_compares_its_dil_args(tmp_path):
    """A model passed in ready-made (options unknown) is compared by its DIL options: here one that
    changes only the initialisation, so its weights load into the other model without an error."""
    out = tmp_path / "run"
    before = stopped_after_epoch_1(out)
    other = build_model("dil_resnet18", pretrained=False, **TINY, intra_args={"diff_init": "random"})
    with pytest.raises(ValueError, match=r"its DIL options differ \(intra_args.diff_init was \"identity\", now "
                                         r"\"random\"\)"):
        _train(out, None, model=other)
    assert snapshot(out) == before
    same = build_model("dil_resnet18", pretrained=False, **TINY)
    assert _train(out, None, model=same).resumed_from == 1
    # the options it was started with stay recorded: a later resume with others is still refused
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    assert state["epoch"] == 2 and state["model_options"]["kwargs"] == {"channels": [8, 16, 32, 64], "stem_width": 8}


def test_checkpoint_without_model_options_resumes_with_a_note(tmp_path):
    """A checkpoint of an earlier version (no record of the options) resumes, and says they were not checked."""
    out = tmp_path / "run"
    stopped_after_epoch_1(out)
    state_file = out / "checkpoint" / "state.json"
    state = json.loads(state_file.read_text())
    assert state["model_options"]["kwargs"] == {"channels": [8, 16, 32, 64], "stem_width": 8}
    assert state["model_options"]["dil_args"]["sim_stages"] == [1, 2, 3, 4]
    del state["model_options"]
    state_file.write_text(json.dumps(state))
    notes: list[str] = []
    result = _train(out, dict(TINY, drop_rate=0.5), log=notes.append)
    assert result.resumed_from == 1
    assert any("does not record the options its model was built with" in n and "could not be checked" in n
               for n in notes), notes


def test_cli_resume_with_another_model_arg_is_a_usage_error(manifest, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "run"
    common = ["train", "--manifest", str(manifest), "--out", str(out), *TINY_ARGS, "--batch-size", "2",
              "--img-size", "16", "--num-snippets", "1", "--test-num-snippets", "1", "--workers", "0",
              "--no-progress", "--epochs", "2", "--val", "none"]
    assert main([*common, "--stop-after-epoch", "1"]) == 0
    before = snapshot(out / "checkpoint")
    capsys.readouterr()
    assert main([*common, "--model-arg", "drop_rate=0.5"]) == 2
    error = capsys.readouterr().err
    assert "drop_rate was not given, now 0.5" in error and "--model-arg" in error
    assert snapshot(out / "checkpoint") == before
    assert main(common) == 0  # the original options: resumed
    assert "resuming" in capsys.readouterr().out


# ---------------------------------------------- 2: a state-dict mismatch is another model
def test_state_dict_mismatch_names_the_tensors_and_asks_for_the_original_model(tmp_path):
    out = tmp_path / "run"
    before = stopped_after_epoch_1(out)
    wider = build_model("dil_resnet18", pretrained=False, channels=(8, 16, 32, 32), stem_width=8)  # options unknown
    with pytest.raises(ValueError) as caught:
        _train(out, None, model=wider)
    message = str(caught.value)
    assert "the model being resumed is not the one this run was started with" in message
    assert "size mismatch for layer4.0.conv1.weight: (64, 32, 3, 3) in the checkpoint vs (32, 32, 3, 3) in this model" \
        in message and "size mismatches in all" in message
    assert "--model-arg" in message and "starts the run over" not in message
    assert "The checkpoint is intact" in message
    assert snapshot(out) == before

    fewer_sims = build_model("dil_resnet18", pretrained=False, sim_stages=(1, 2, 3), **TINY)
    with pytest.raises(ValueError) as caught:
        _train(out, None, model=fewer_sims)
    message = str(caught.value)
    assert "Unexpected key(s): layer4." in message
    assert "its DIL options differ (sim_stages was [1, 2, 3, 4], now [1, 2, 3])" in message


def test_a_damaged_checkpoint_keeps_the_start_over_advice(tmp_path):
    out = tmp_path / "run"
    stopped_after_epoch_1(out)
    (out / "checkpoint" / "model.safetensors").write_bytes(b"\x00" * 16)
    with pytest.raises(ValueError) as caught:
        _train(out, TINY)
    message = str(caught.value)
    assert "the training checkpoint cannot be resumed" in message and "starts the run over" in message
    assert "the model being resumed is not the one" not in message


# ------------------------------------------------------- 3: checkpoints flushed to disk
def test_checkpoint_files_and_folders_are_synced_before_the_swap(tmp_path, monkeypatch):
    events: list[tuple[str, str]] = []
    real_fsync, real_rename, real_rmtree = os.fsync, os.rename, shutil.rmtree

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def rename(src, dst, *args, **kwargs):
        events.append(("rename", f"{os.fspath(src)} -> {os.fspath(dst)}"))
        return real_rename(src, dst, *args, **kwargs)

    def rmtree(path, *args, **kwargs):
        if os.path.exists(path):
            events.append(("rmtree", os.fspath(path)))
        return real_rmtree(path, *args, **kwargs)

    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.ones(1, 2)).sum().backward()
    optimizer.step()
    ckpt = tmp_path / "checkpoint"
    save_training_checkpoint(ckpt, model_state=model.state_dict(), optimizer_state=optimizer.state_dict(),
                             state={"epoch": 1})
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "rename", rename)
    monkeypatch.setattr(shutil, "rmtree", rmtree)
    save_training_checkpoint(ckpt, model_state=model.state_dict(), optimizer_state=optimizer.state_dict(),
                             state={"epoch": 2})
    tmp, old = f"{ckpt}.tmp", f"{ckpt}.old"
    swap = events.index(("rename", f"{tmp} -> {ckpt}"))
    for name in ("model.safetensors", "optimizer.safetensors", "state.json"):
        assert ("fsync", f"{tmp}/{name}") in events[:swap], (name, events)
    assert ("fsync", tmp) in events[:swap], events  # the folder's entries, before it is swapped in
    removed = events.index(("rmtree", old))
    assert ("fsync", str(tmp_path)) in events[swap:removed], events  # the renames, before the old one goes
    assert json.loads((ckpt / "state.json").read_text())["epoch"] == 2 and not os.path.exists(old)


# ------------------------------------- 4: a run killed before its first checkpoint
class KilledAt(Clips):
    """Clips whose item ``at`` interrupts the run (Ctrl-C during epoch 1)."""

    def __init__(self, at: int):
        super().__init__()
        self.at = at

    def __getitem__(self, i):
        if i == self.at:
            raise KeyboardInterrupt
        return super().__getitem__(i)


def test_a_run_killed_before_its_first_checkpoint_is_started_again_by_the_same_call(tmp_path):
    from dynsnip.engine import train

    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train(tiny_recipe(epochs=1), KilledAt(5), None, out, model_kwargs=TINY, device="cpu", progress=False, log=None)
    assert (out / "recipe.json").is_file() and not (out / "checkpoint").exists()
    (out / "checkpoint.tmp").mkdir()  # and a kill while the first checkpoint was written
    (out / "checkpoint.tmp" / "model.safetensors").write_bytes(b"half")
    notes: list[str] = []
    result = train(tiny_recipe(epochs=1), Clips(), None, out, model_kwargs=TINY, device="cpu", progress=False,
                   log=notes.append)
    assert result.resumed_from == 0 and [h["epoch"] for h in result.history] == [1]
    assert any("stopped before its first epoch ended" in n and "started over" in n for n in notes), notes
    assert (out / "checkpoint" / "state.json").is_file() and not (out / "checkpoint.tmp").exists()


@pytest.mark.parametrize("extra", ["notes.txt", "history.json", "model", "train.log"])
def test_a_first_runs_leftovers_with_anything_else_are_still_refused(tmp_path, extra):
    from dynsnip.engine.run_folder import plan_run

    out = tmp_path / "run"
    out.mkdir()
    (out / "recipe.json").write_text(tiny_recipe().to_json())
    assert plan_run(out, tiny_recipe()).clear  # alone: started over
    if extra == "model":
        (out / extra).mkdir()
    else:
        (out / extra).write_text("mine")
    with pytest.raises(FileExistsError, match="refusing to overwrite an earlier run"):
        plan_run(out, tiny_recipe())
    (out / extra).rmdir() if extra == "model" else (out / extra).unlink()
    (out / "recipe.json").write_text('{"colour": 1}')  # not a dynsnip recipe: not ours to delete
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        plan_run(out, tiny_recipe())
