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

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README, re.S)


def test_readme_snippets_that_infer_use_eval_and_inference_mode():
    calls = [b for b in python_blocks() if re.search(r"\bmodel\((clip|torch)", b)]
    assert len(calls) >= 2
    for block in calls:
        assert "torch.inference_mode()" in block, block
    assert 'timm.create_model("dil_resnet50", num_classes=1).eval()' in python_blocks()[0]


def test_readme_install_line_says_it_takes_cuda_torch_and_how_to_get_cpu_wheels():
    head = README.split("## ", 1)[0]
    assert "CPU wheels" not in head.split("```bash", 1)[0]  # no claim that PyPI gives CPU wheels
    assert "CUDA build" in head and "--index-url https://download.pytorch.org/whl/cpu" in head


def test_attention_maps_snippet_runs_under_inference_mode():
    model = timm.create_model("dil_resnet18", num_classes=1, **TINY).eval()
    clip = torch.randn(1, 3, 2 * 4, 32, 32)
    with dynsnip.record_attention(model) as maps, torch.inference_mode():
        model(clip)
    assert maps.intra() and maps.inter()


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
