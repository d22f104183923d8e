"""The run folder of a training: never overwritten without ``overwrite``, resumed only with its
own recipe, one training at a time, and no "done" pointing at a model that was never saved."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from torch.utils.data import Dataset

from dynsnip.data.manifest import ManifestEntry
from dynsnip.engine import train
from dynsnip.engine.run_folder import clear_run_outputs, plan_run
from dynsnip.engine.run_lock import LOCK_NAME, RunFolderBusyError, RunFolderLock
from test_engine_train import TINY, Clips, run, tiny_recipe


def test_an_earlier_run_without_checkpoint_is_not_overwritten(tmp_path):
    out = tmp_path / "run"
    run(tiny_recipe(epochs=1), out, save_checkpoints=False)
    before = (out / "model" / "model.safetensors").read_bytes()
    with pytest.raises(FileExistsError, match=r"not empty \(history.json, model, recipe.json\) and it has no "
                                              r"checkpoint to resume.*--overwrite"):
        run(tiny_recipe(epochs=1, seed=9), out)
    assert (out / "model" / "model.safetensors").read_bytes() == before
    # unrelated files are a reason to refuse too, and --overwrite leaves them alone
    (out / "notes.txt").write_text("mine")
    run(tiny_recipe(epochs=1, seed=9), out, overwrite=True)
    assert (out / "model" / "model.safetensors").read_bytes() != before
    assert (out / "notes.txt").read_text() == "mine"


def test_overwrite_removes_only_the_earlier_runs_outputs(tmp_path):
    for name in ("model", "checkpoint.old"):
        (tmp_path / name).mkdir()
    for name in ("history.json", "val_report.json", "mine.csv"):
        (tmp_path / name).write_text("x")
    assert sorted(clear_run_outputs(tmp_path)) == ["checkpoint.old", "history.json", "model", "val_report.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.csv"]


def test_out_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "run").write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file"):
        plan_run(tmp_path / "run", tiny_recipe())


def test_resume_with_other_settings_is_refused_naming_them(tmp_path):
    out = tmp_path / "run"
    run(tiny_recipe(epochs=3), out, stop_after_epoch=1)
    with pytest.raises(ValueError, match=r"hflip_prob 0.5 \(saved\) vs 0.2 \(this command\), seed 3 \(saved\) vs 4"):
        run(tiny_recipe(epochs=3, hflip_prob=0.2, seed=4), out)
    assert json.loads((out / "recipe.json").read_text())["seed"] == 3  # nothing was written
    # epochs may change: that is what resuming is for
    assert run(tiny_recipe(epochs=2), out).resumed_from == 1


def test_resume_cannot_be_shorter_than_the_epochs_already_run(tmp_path):
    """--epochs below what ran ("resuming after epoch 3 of 2") wrote epochs 2 into recipe.json
    and the card though 3 ran: refused, naming both; the epochs run are fine (nothing to do)."""
    out = tmp_path / "run"
    run(tiny_recipe(epochs=2), out)
    for use_saved_recipe in (False, True):
        with pytest.raises(ValueError, match=r"--epochs 1: .* has already run 2 epochs.*give --epochs 2 or more"):
            train(tiny_recipe(epochs=1), Clips(), None, out, model_kwargs=TINY, device="cpu", progress=False,
                  log=None, use_saved_recipe=use_saved_recipe)
    assert json.loads((out / "recipe.json").read_text())["epochs"] == 2
    assert json.loads((out / "model" / "config.json").read_text())["training"]["recipe"]["epochs"] == 2
    assert run(tiny_recipe(epochs=2), out).resumed_from == 2


def test_resume_with_the_saved_recipe_when_asked_and_records_what_ran(tmp_path):
    out = tmp_path / "run"
    run(tiny_recipe(epochs=3), out, stop_after_epoch=1)
    notes = []
    result = train(tiny_recipe(epochs=2, lr=1e-2, img_size=32), Clips(), None, out, model_kwargs=TINY,
                   device="cpu", progress=False, log=notes.append, use_saved_recipe=True)
    assert result.resumed_from == 1 and [h["lr"] for h in result.history] == [1e-3, 1e-3]
    assert any("img_size 16 (saved) vs 32 (this command)" in n for n in notes)
    recorded = json.loads((out / "recipe.json").read_text())
    card = json.loads((out / "model" / "config.json").read_text())["training"]["recipe"]
    assert recorded == card and (recorded["lr"], recorded["img_size"], recorded["epochs"]) == (1e-3, 16, 2)


def test_resume_after_a_nan_loss_may_lower_the_lr_and_records_it(tmp_path):
    """The advice after a NaN loss (lower --lr, --grad-clip, --no-amp / --amp-dtype) can be
    followed by resuming: those settings may change, with a note, and history.json says from
    which epoch on they ran; a lower lr scales the learning rate in use."""
    out = tmp_path / "run"
    run(tiny_recipe(epochs=3), out, stop_after_epoch=1)
    notes: list[str] = []
    result = train(tiny_recipe(epochs=3, lr=5e-4, grad_clip=1.0, amp_dtype="bfloat16"), Clips(), None, out,
                   model_kwargs=TINY, device="cpu", progress=False, log=notes.append)
    assert result.resumed_from == 1 and [h["lr"] for h in result.history] == pytest.approx([1e-3, 5e-4, 5e-4])
    assert any("from epoch 2 on: lr 0.0005 (until now 0.001), amp_dtype 'bfloat16' (until now 'float16'), "
               "grad_clip 1.0 (until now None)" in n for n in notes)
    changed = json.loads((out / "history.json").read_text())[1]["recipe_changed"]
    assert changed["lr"]["from"] == 1e-3 and changed["lr"]["to"] == 5e-4
    assert changed["grad_clip"] == {"from": None, "to": 1.0} and changed["amp_dtype"]["to"] == "bfloat16"
    assert "recipe_changed" not in result.history[2] and "recipe_changed" not in result.history[0]
    recorded = json.loads((out / "recipe.json").read_text())
    assert (recorded["lr"], recorded["grad_clip"]) == (5e-4, 1.0)
    # other settings are still refused
    with pytest.raises(ValueError, match=r"seed 3 \(saved\) vs 4"):
        run(tiny_recipe(epochs=4, lr=5e-4, grad_clip=1.0, amp_dtype="bfloat16", seed=4), out)


class EntryClips(Clips):
    """Clips whose labels are known up front from manifest-like entries, as the data sets' are."""

    def __init__(self, labels):
        super().__init__(len(labels))
        self.y = torch.tensor(labels)
        self.entries = [ManifestEntry(f"v{i}", label) for i, label in enumerate(labels)]


def test_a_one_class_validation_set_is_refused_before_training(tmp_path):
    with pytest.raises(ValueError, match=r"only fake videos \(3\).*AUC.*undefined.*--monitor"):
        run(tiny_recipe(), tmp_path / "run", val=EntryClips([1, 1, 1]))
    assert not (tmp_path / "run" / "model").exists() and not (tmp_path / "run" / "history.json").exists()
    # a monitor that one class does define is fine
    result = run(tiny_recipe(epochs=1, monitor="loss"), tmp_path / "run", val=EntryClips([1, 1, 1]))
    assert (result.model_dir / "config.json").is_file()


HOLDER = textwrap.dedent("""
    import sys, time
    from dynsnip.engine.run_lock import RunFolderLock
    with RunFolderLock(sys.argv[1]):
        print("locked", flush=True)
        time.sleep(60)
""")


def test_a_second_training_in_the_same_folder_is_refused_naming_the_first(tmp_path):
    out = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunFolderBusyError, match=rf"in use by another training \(pid {holder.pid} on "):
            run(tiny_recipe(epochs=1), out)
        assert not (out / "model").exists()
    finally:
        holder.kill()
        holder.wait()
    # the lock of a dead process does not block: its file is still there, the lock is not
    assert (out / LOCK_NAME).read_text().startswith(f"pid {holder.pid}")
    assert (run(tiny_recipe(epochs=1), out).model_dir / "config.json").is_file()


def test_the_lock_is_reentrant_in_one_process_and_released(tmp_path):
    with RunFolderLock(tmp_path):
        with RunFolderLock(tmp_path):
            pass
        code = ("import sys\nfrom dynsnip.engine.run_lock import RunFolderLock\n"
                "try:\n    RunFolderLock(sys.argv[1]).__enter__()\nexcept Exception as e:\n    print(type(e).__name__)")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
        other = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, env=env)
        assert other.stdout.strip() == "RunFolderBusyError"
    other = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, env=env)
    assert other.stdout.strip() == "" and other.returncode == 0
