"""The README's snippets infer without autograd, its install line says what it installs, and
progress bars do not flood logs that are not a terminal."""
from __future__ import annotations

import io
import re
from pathlib import Path

import timm
import torch

import dynsnip
from dynsnip.engine import train
from dynsnip.engine.evaluate import progress_bar
from test_engine_train import TINY, Clips, tiny_recipe
from project_scripts import load_script

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README, re.S)


def test_readme_snippets_that_infer_use_eval_and_inference_mode():
    calls = [b for b in python_blocks() if re.search(r"\bmodel\((clip|torch)", b)]
    assert len(calls) >= 2
    for block in calls:
        assert "torch.inference_mode()" in block, block
    assert 'timm.create_model("dil_resnet50", num_classes=1).eval()' in python_blocks()[0]


ROOT = Path(__file__).resolve().parents[1]


def install_torch_tool():
    return load_script("tools/install_torch.py")


def test_readme_install_lines_take_the_cpu_build_on_a_cpu_machine():
    """Issue 21, item 18: the commands a newcomer copies install torch's CPU build on a Linux
    machine without an NVIDIA GPU (not the 3 GB CUDA one), the CUDA build with a driver, and
    where PyTorch's index cannot be reached the plain pip command that CI runs."""
    head = README.split("## ", 1)[0]
    commands = [line for line in head.split("```bash", 1)[1].split("```", 1)[0].splitlines()
                if line.strip() and not line.startswith("#")]
    assert len(commands) == 2 and all(c.startswith("python tools/install_torch.py && pip install -e") for c in commands)
    tool = install_torch_tool()
    packages = ["install", f"torch=={tool.TORCH}", f"torchvision=={tool.TORCHVISION}"]
    cpu = packages + ["--index-url", "https://download.pytorch.org/whl/cpu"]
    assert tool.choose(system="Linux", nvidia=False, probe=lambda: None)[0] == cpu
    assert tool.choose(system="Linux", nvidia=True, probe=lambda: None)[0] == packages
    assert tool.choose(system="Darwin", nvidia=False, probe=lambda: None)[0] == packages
    pip_args, why = tool.choose(system="Linux", nvidia=False, probe=lambda: "Name or service not known")
    assert pip_args == packages and "cannot be reached (Name or service not known)" in why
    assert tool.choose("cpu", system="Darwin")[0] == cpu and tool.choose("cuda", nvidia=False)[0] == packages
    assert f"`pip {' '.join(cpu)}`" in head.replace("\n", " ")  # the README names the command it runs
    assert "CUDA build" in head and "--cuda" in head
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert "python tools/install_torch.py" in ci  # CI installs torch as the README's command does
    assert "python -m pytest -q" in ci  # and runs the README's test command


def test_install_torch_dry_run_prints_the_command(capsys):
    tool = install_torch_tool()
    assert tool.main(["--cpu", "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "install_torch: --cpu: torch's CPU build from PyTorch's index"
    assert out[1].endswith(f"-m pip install torch=={tool.TORCH} torchvision=={tool.TORCHVISION} "
                           "--index-url https://download.pytorch.org/whl/cpu")


def test_attention_maps_snippet_runs_under_inference_mode():
    model = timm.create_model("dil_resnet18", num_classes=1, **TINY).eval()
    clip = torch.randn(1, 3, 2 * 4, 32, 32)
    with dynsnip.record_attention(model) as maps, torch.inference_mode():
        model(clip)
    assert maps.intra() and maps.inter()


def test_nested_attention_recording_keeps_the_outer_block_recording():
    model = timm.create_model("dil_resnet18", num_classes=1, **TINY).eval()
    clip = torch.randn(1, 3, 2 * 4, 32, 32)
    with torch.no_grad(), dynsnip.record_attention(model) as outer:
        with dynsnip.record_attention(model) as inner:
            pass  # no forward here: nothing recorded, and nothing of the outer block's taken
        assert inner == {}
        model(clip)  # after the inner block: the outer block still records
        with dynsnip.record_attention(model) as inner:
            model(clip)
        assert inner.intra() and inner.inter()
    assert outer.keys() == inner.keys()
    assert all(not m.record_attention and m.attention is None for m in model.modules() if hasattr(m, "record_attention"))


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_no_progress_bar_into_a_file_or_pipe():
    log = io.StringIO()
    bar = progress_bar(range(3), 3, "x", True, file=log)
    assert list(bar) == [0, 1, 2] and not hasattr(bar, "set_postfix") and log.getvalue() == ""
    terminal = Terminal()
    bar = progress_bar(range(3), 3, "x", True, file=terminal)
    assert list(bar) == [0, 1, 2] and hasattr(bar, "set_postfix") and "0/3" in terminal.getvalue()


def test_training_logs_lines_instead_of_a_bar_when_stderr_is_not_a_terminal(tmp_path, capsys):
    lines = []
    train(tiny_recipe(epochs=1, batch_size=2, log_every=2), Clips(), None, tmp_path / "run", model_kwargs=TINY,
          device="cpu", progress=True, log=lines.append)
    assert [line.split(" loss")[0] for line in lines if "step" in line] == [
        "  epoch 1 step 2/4", "  epoch 1 step 4/4"]
    assert "it/s" not in capsys.readouterr().err
