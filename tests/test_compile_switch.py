"""``--compile`` (dynsnip.engine.compile): what it compiles, and a clear refusal where it cannot run.

No inductor code generation here (minutes on 2 CPU cores): the wiring is tested with
``torch.compile``'s ``eager`` backend, which captures the graph the same way.
"""
from __future__ import annotations

import importlib

import pytest
import timm
import torch
from safetensors.torch import save_file

import dynsnip
import dynsnip.engine.compile as compile_switch
from dynsnip.cli import main
from dynsnip.engine.compile import compile_model, compile_problem, is_compiled
from test_cli_train import TINY_ARGS, manifest  # noqa: F401  (fixture)
from video_fixtures import two_people

NO_COMPILER = "torch.compile on the CPU needs a C++ compiler (g++ or clang++ on PATH, or CXX=...): none found"


def tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return timm.create_model("dil_resnet18", num_classes=1, channels=[8, 16, 32, 64], stem_width=8).eval()


def test_compile_problem_names_what_is_missing(monkeypatch):
    import torch._inductor.cpp_builder as cpp_builder
    import torch.utils._triton as triton_utils

    def no_compiler():
        raise RuntimeError("no C++ compiler found")

    monkeypatch.setattr(cpp_builder, "get_cpp_compiler", no_compiler)
    assert "needs a C++ compiler" in compile_problem("cpu") and "run without --compile" in compile_problem("cpu")
    monkeypatch.setattr(triton_utils, "has_triton", lambda: False)
    assert "needs Triton" in compile_problem("cuda")
    with pytest.raises(compile_switch.CompileUnavailableError, match="C\\+\\+ compiler"):
        compile_model(tiny_model(), "cpu", "auto", inference=True)


def test_the_model_is_compiled_in_place_and_computes_the_same():
    model = tiny_model()
    clip = torch.randn(1, 3, 8, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model(clip)
        features = model.forward_features(clip)
    keys = list(model.state_dict())
    torch._dynamo.reset()
    assert compile_model(model, "cpu", "auto", inference=True, backend="eager") is model
    assert is_compiled(model) and "forward_features" in vars(model)  # what score_clip and forward call
    with torch.no_grad():
        torch.testing.assert_close(model(clip), expected, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(model.forward_features(clip), features, rtol=1e-5, atol=1e-5)
    assert list(model.state_dict()) == keys  # saved and loaded as before
    assert compile_model(model, "cpu", None, inference=True) is model  # None: nothing to do
    del model.forward_features  # undone
    assert not is_compiled(model)


@pytest.fixture
def no_compiler(monkeypatch):
    for module in (compile_switch, importlib.import_module("dynsnip.cli.train"), importlib.import_module("dynsnip.cli.predict")):
        monkeypatch.setattr(module, "compile_problem", lambda device: NO_COMPILER)


def test_train_predict_evaluate_refuse_compile_where_it_cannot_run(no_compiler, manifest, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "run"
    assert main(["train", "--manifest", str(manifest), "--out", str(out), *TINY_ARGS, "--compile"]) == 2
    assert NO_COMPILER in capsys.readouterr().err and not (out / "model").exists()

    folder = tmp_path / "detector"
    dynsnip.save_pretrained(tiny_model(), folder)
    assert main(["evaluate", "--model", str(folder), "--manifest", str(manifest), "--compile"]) == 2
    assert NO_COMPILER in capsys.readouterr().err

    ckpt = tmp_path / "det.safetensors"
    save_file(timm.create_model("dil_resnet18", num_classes=1).state_dict(), str(ckpt))
    assert main(["predict", str(two_people()), "--model", "dil_resnet18", "--checkpoint", str(ckpt),
                 "--face-detector", "none", "--compile"]) == 2
    assert NO_COMPILER in capsys.readouterr().err


def test_train_compile_trains_the_compiled_model(manifest, tmp_path, monkeypatch, capsys):  # noqa: F811
    """``dynsnip train --compile``: the model that trains (and is validated and saved) is the one
    compiled in place; here with the eager backend (same capture, no code generation)."""
    compiled = []
    real_compile = torch.compile

    def eager_compile(fn, **options):
        compiled.append((getattr(fn, "__name__", fn), options.get("mode")))
        return real_compile(fn, backend="eager", dynamic=options.get("dynamic"))

    monkeypatch.setattr(compile_switch, "compile_problem", lambda device: None)
    monkeypatch.setattr(compile_switch.torch, "compile", eager_compile)
    torch._dynamo.reset()
    out = tmp_path / "run"
    assert main(["train", "--manifest", str(manifest), "--out", str(out), *TINY_ARGS, "--batch-size", "2",
                 "--img-size", "32", "--test-num-snippets", "2", "--epochs", "1", "--workers", "0",
                 "--no-progress", "--compile"]) == 0
    assert compiled == [("forward_features", "default")]  # training on the CPU: the default mode
    assert (out / "model" / "config.json").is_file()
    loaded = dynsnip.load_model(out / "model")
    assert not is_compiled(loaded)  # what was saved is the plain model


def test_compile_mode_alone_turns_compile_on(no_compiler, manifest, tmp_path, capsys):  # noqa: F811
    """``--compile-mode MODE`` implies ``--compile``: given alone it was accepted and the run stayed
    eager without a word. Here it reaches the same refusal as ``--compile`` where compile cannot run."""
    import argparse

    from dynsnip.engine.compile import add_compile_arguments, compile_mode_from_args

    parser = argparse.ArgumentParser()
    add_compile_arguments(parser)
    assert compile_mode_from_args(parser.parse_args([])) is None
    assert compile_mode_from_args(parser.parse_args(["--compile-mode", "max-autotune"])) == "max-autotune"
    assert compile_mode_from_args(parser.parse_args(["--compile"])) == "auto"
    out = tmp_path / "run"
    assert main(["train", "--manifest", str(manifest), "--out", str(out), *TINY_ARGS, "--compile-mode", "default"]) == 2
    assert NO_COMPILER in capsys.readouterr().err and not (out / "model").exists()
    folder = tmp_path / "detector"
    dynsnip.save_pretrained(tiny_model(), folder)
    assert main(["evaluate", "--model", str(folder), "--manifest", str(manifest), "--compile-mode", "default"]) == 2
    assert NO_COMPILER in capsys.readouterr().err
