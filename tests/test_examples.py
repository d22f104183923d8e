"""The runnable files in ``examples/`` that the README points to still run and print what they say."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(name: str, *args: str, cwd: Path | None = None) -> str:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, str(EXAMPLES / name), *args], capture_output=True, text=True,
                          timeout=600, env=env, cwd=cwd)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc.stdout


def test_quickstart_builds_dil_resnet50_and_reads_the_ut_map():
    out = run_example("quickstart.py")
    assert "dil_resnet50: 24.87M parameters (1.36M in the SIMs), 9 Intra-SI + 7 Inter-SI blocks" in out
    assert "Inter-SIM U x T map of the last stage: (8, 4)" in out


def test_custom_backbone_runs_with_u4_and_u8():
    out = run_example("custom_backbone.py")
    assert "U=4 logits:" in out and "U=8 logits:" in out


def test_finetune_example_on_the_toy_set(tmp_path):
    out = run_example("finetune.py", "--toy", "--out", str(tmp_path / "run"))
    assert "checkpoint ready to push" in out
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()
    config = json.loads((tmp_path / "run" / "model" / "config.json").read_text())
    # the toy set has no test rows: the example's final evaluation is on val, the split training validated on,
    # so it replaces training's validation result (one result per data and split)
    assert [(e["split"], e["source"].split(",")[0]) for e in config["evaluation"]] == [("val", "examples/finetune.py")]
    assert "| manifest.csv [val] |" in (tmp_path / "run" / "model" / "README.md").read_text()
