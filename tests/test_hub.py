"""Hugging Face Hub integration (issue 3), against a Hub served on 127.0.0.1 by tests/local_hub.py.

Every download and upload below goes through huggingface_hub's real HTTP code; the local
hub logs the requests, which the tests check (a HEAD and a GET happened, or none did
offline; a pickle was never fetched).
"""
from __future__ import annotations

import ast
import dataclasses
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import safetensors.torch
import timm
import torch
from huggingface_hub import ModelCard
from huggingface_hub.errors import RepositoryNotFoundError

import dynsnip
from dynsnip import hub as dynsnip_hub
from dynsnip.hub import (
    CheckpointMismatchError,
    ModelFileNotFoundError,
    NotADILModelError,
    NotCachedError,
    RepoNotFoundError,
)
from dynsnip.hub.records import evaluation_record, record_evaluation, training_record
from dynsnip.models import dil_resnet
from hub_fixtures import go_offline, local_hub  # noqa: F401 (fixture)
from local_hub import LocalHub

REPO = "me/my-detector"
HUB_ID = f"hf-hub:{REPO}"  # a bare owner/name is a local path (issue 21, item 14)
# timm's smallest ResNet keeps these tests fast; the README's dil_resnet50.tv_in1k takes the same path.
BASE, TAG = "test_resnet", "r160_in1k"
BASE_REPO = f"timm/{BASE}.{TAG}"
DIL_OPTIONS = dict(
    snippet_len=2, num_snippets=3, test_num_snippets=5, sim_stages=[2, 3], sim_pattern="alternate",
    intra_args={"reduction": 8, "kernel_size": 5}, inter_args={"reduction": 2},
)


# --------------------------------------------------------------------------- helpers
def clips(model: torch.nn.Module, num_snippets: int = 2, seed: int = 0) -> torch.Tensor:
    """A (1, 3, U*T, 32, 32) batch for ``model``."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(1, 3, num_snippets * model.snippet_len, 32, 32, generator=gen)


def outputs(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(x)


def random_state_dict(model: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """``model``'s state dict filled with seeded values (BN variances kept positive)."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for key, value in model.state_dict().items():
        if value.is_floating_point():
            value = torch.randn(value.shape, generator=gen) * 0.1
            if key.endswith("running_var"):
                value = value.abs() + 0.5
        out[key] = value.clone()
    return out


def safetensors_bytes(state_dict: dict[str, torch.Tensor]) -> bytes:
    return safetensors.torch.save({k: v.contiguous() for k, v in state_dict.items()})


def serve_imagenet_resnet(hub: LocalHub, base: str = BASE, tag: str = TAG, extra_files: dict | None = None,
                          weights: bytes | None = None, with_safetensors: bool = True) -> dict[str, torch.Tensor]:
    """Serve a 2D ImageNet ResNet under timm's repo name ``timm/<base>.<tag>``, as timm publishes them.

    Returns the state dict served (``weights`` replaces its bytes, e.g. another network's).
    """
    model_2d = timm.create_model(base)
    state_dict = random_state_dict(model_2d, seed=1)
    config = {
        "architecture": base,
        "num_classes": model_2d.num_classes,
        "num_features": model_2d.num_features,
        "pretrained_cfg": {"tag": tag, "input_size": [3, 160, 160], "num_classes": 1000, "classifier": "fc"},
    }
    files = {"config.json": json.dumps(config).encode()}
    if with_safetensors:
        files["model.safetensors"] = weights if weights is not None else safetensors_bytes(state_dict)
    files.update(extra_files or {})
    hub.add_repo(f"timm/{base}.{tag}", files)
    return state_dict


def detector(num_classes: int = 1, **options) -> torch.nn.Module:
    """A small DIL detector whose weights all differ from a fresh initialisation."""
    model = timm.create_model(f"dil_{BASE}", num_classes=num_classes, **options)
    model.load_state_dict(random_state_dict(model, seed=2))
    return model.eval()


def push_detector(hub: LocalHub, repo_id: str = REPO, **options) -> torch.nn.Module:
    model = detector(**options)
    dynsnip_hub.push_to_hub(model, repo_id, token="hf_test", base_model=BASE_REPO)
    return model


class PickleBomb:
    """Unpickling this writes a marker file: proof that arbitrary code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "pwned"))


def pickle_bomb(marker: Path) -> bytes:
    return pickle.dumps({"conv1.weight": PickleBomb(marker)}, protocol=2)


# ------------------------------------------------------------- the user's three steps
def test_user_steps_end_to_end(local_hub: LocalHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 3's steps 1-4: ImageNet backbone in, fine-tune, save + push, pull bit-identically, offline."""
    served = serve_imagenet_resnet(local_hub)

    # 1. the ImageNet ResNet comes from timm's repo on the hub and is adapted into the video network
    model = timm.create_model(f"dil_{BASE}.{TAG}", pretrained=True, num_classes=1)
    assert local_hub.requests_to(f"/{BASE_REPO}/resolve/main/model.safetensors", "HEAD")[0].status == 200
    assert local_hub.requests_to(f"/{BASE_REPO}/resolve/main/model.safetensors", "GET")[0].status == 200
    weights = model.state_dict()
    backbone = [k for k in served if not k.startswith("fc.")]
    assert backbone and all(torch.equal(weights[k], served[k]) for k in backbone)
    assert any(".sim." in k for k in weights) and not any(".sim." in k for k in served)
    assert model.fc.out_features == 1

    # "fine-tune": one step that changes backbone, SIMs and head
    x = clips(model)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    torch.nn.functional.binary_cross_entropy_with_logits(model(x), torch.ones(1, 1)).backward()
    optimizer.step()
    expected = outputs(model, x)

    # 2. save and push: config.json + model.safetensors + README.md, no pickle
    out = dynsnip.save_pretrained(model, tmp_path / "out")
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert json.loads((out / "config.json").read_text())["base_model"] == BASE_REPO  # fine-tuned from it
    dynsnip.push_to_hub(model, REPO, token="hf_test")
    assert {"README.md", "config.json", "model.safetensors"} <= set(local_hub.files(REPO))
    assert local_hub.requests_to(f"/api/models/{REPO}/commit/main", "POST")[0].status == 200

    # 3. anyone: timm after `import dynsnip` rebuilds the detector, bit-identical
    local_hub.clear_log()
    pulled = timm.create_model(f"hf-hub:{REPO}", pretrained=True)
    assert [(r.method, r.path) for r in local_hub.requests if r.path.endswith("model.safetensors")] == [
        ("HEAD", f"/{REPO}/resolve/main/model.safetensors"), ("GET", f"/{REPO}/resolve/main/model.safetensors"),
    ]
    assert torch.equal(outputs(pulled, x), expected)
    assert pulled.dil_args == model.dil_args
    for key in ("input_size", "mean", "std"):
        assert tuple(pulled.pretrained_cfg[key]) == tuple(model.pretrained_cfg[key])

    # 4. offline, from the cache: no request reaches the hub
    go_offline(monkeypatch)
    local_hub.clear_log()
    offline = timm.create_model(f"hf-hub:{REPO}", pretrained=True)
    assert torch.equal(outputs(offline, x), expected)
    assert local_hub.requests == []


@pytest.mark.slow  # a fresh interpreter imports torch + timm: a few seconds
def test_offline_environment_variable_in_a_fresh_process(local_hub: LocalHub, tmp_path: Path) -> None:
    """HF_HUB_OFFLINE=1 set before Python starts (the way users set it) loads from the cache."""
    model = push_detector(local_hub)
    dynsnip_hub.load_model(HUB_ID)  # fills the cache
    x = clips(model)
    torch.save(x, tmp_path / "x.pt")
    torch.save(outputs(model, x), tmp_path / "y.pt")
    local_hub.clear_log()
    script = (
        "import sys, torch, timm, dynsnip\n"
        f"m = timm.create_model('hf-hub:{REPO}', pretrained=True).eval()\n"
        "x = torch.load(sys.argv[1], weights_only=True); y = torch.load(sys.argv[2], weights_only=True)\n"
        "with torch.no_grad(): assert torch.equal(m(x), y)\n"
        "from dynsnip.hub import NotCachedError, load_model\n"
        "try:\n"
        "    load_model('hf-hub:me/never-downloaded')\n"
        "except NotCachedError as err:\n"
        "    print('NOT CACHED:', err)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}  # HF_HOME, HF_ENDPOINT: the fixture's
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "x.pt"), str(tmp_path / "y.pt")],
        env=env, capture_output=True, text=True, timeout=120, cwd=Path(__file__).parent,
    )
    assert done.returncode == 0, done.stderr
    assert "NOT CACHED: 'config.json' of Hub repo 'me/never-downloaded'" in done.stdout
    assert "HF_HUB_OFFLINE=1" in done.stdout
    assert local_hub.requests == []


# --------------------------------------------------------------------- what is saved
def test_config_records_every_dil_option_from_a_direct_builder_call(tmp_path: Path) -> None:
    # A direct builder call: timm's create_model records nothing, dynsnip must.
    model = dil_resnet.dil_test_resnet(num_classes=2, **DIL_OPTIONS)
    model.load_state_dict(random_state_dict(model, seed=3))
    dynsnip_hub.save_pretrained(model, tmp_path, pretrained_cfg={"input_size": (3, 112, 112)})
    config = json.loads((tmp_path / "config.json").read_text())

    assert config["architecture"] == "dil_test_resnet"
    assert config["num_classes"] == 2
    for key, value in DIL_OPTIONS.items():
        if key in ("intra_args", "inter_args"):  # options whose default changed are always recorded
            from dynsnip.models.dil_resnet import RECORDED_INTRA_DEFAULTS, RECORDED_SIM_DEFAULTS

            value = {**(RECORDED_INTRA_DEFAULTS if key == "intra_args" else RECORDED_SIM_DEFAULTS), **value}
        assert config["model_args"][key] == value
    assert config["video"] == {
        "layout": "(B, C, U*T, H, W)", "snippet_len": 2, "num_snippets": 3, "test_num_snippets": 5,
        "num_frames": 6, "test_num_frames": 10,
    }
    cfg = config["pretrained_cfg"]
    assert cfg["input_size"] == [3, 112, 112] and cfg["num_classes"] == 2
    assert cfg["mean"] == list(model.pretrained_cfg["mean"]) and cfg["std"] == list(model.pretrained_cfg["std"])
    assert cfg["hf_hub_filename"] == "model.safetensors"
    assert set(cfg) <= {f.name for f in dataclasses.fields(timm.models.PretrainedCfg)}  # timm reads it back
    assert "base_model" not in config  # random init: not fine-tuned from the default tag's weights

    reloaded = timm.create_model(f"local-dir:{tmp_path}", pretrained=True)
    assert reloaded.dil_args == model.dil_args
    x = clips(model, num_snippets=3)
    assert torch.equal(outputs(reloaded, x), outputs(model, x))


def test_converted_timm_resnet_saves_as_its_dil_architecture(tmp_path: Path) -> None:
    model = dynsnip.convert_resnet(timm.create_model(BASE, num_classes=1), snippet_len=2, stages=(3, 4))
    dynsnip_hub.save_pretrained(torch.nn.DataParallel(model), tmp_path)  # the wrapper is looked through
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["architecture"] == f"dil_{BASE}"
    reloaded = dynsnip_hub.load_model(tmp_path)
    x = clips(model)
    assert torch.equal(outputs(reloaded, x), outputs(model, x))


def test_save_refuses_what_config_json_cannot_rebuild(tmp_path: Path) -> None:
    model = detector()
    model.fc = torch.nn.Linear(model.num_features, 5)  # swapped head, num_classes still says 1
    with pytest.raises(ValueError, match=r"would not rebuild this model.*fc\.weight"):
        dynsnip_hub.save_pretrained(model, tmp_path)
    with pytest.raises(TypeError, match="expected a DIL model"):
        dynsnip_hub.save_pretrained(timm.create_model(BASE), tmp_path)
    assert not (tmp_path / "model.safetensors").exists()


def test_save_refuses_what_load_model_would_refuse(tmp_path: Path) -> None:
    """A folder that save_pretrained writes must load: a model without a classifier
    (reset_classifier(0)) or with a U beyond the loader's bound is refused before anything is
    written, naming the setting; a U below 1 is refused when the model is built."""
    headless = detector()
    headless.reset_classifier(0)
    with pytest.raises(ValueError, match=r"num_classes = 0.*needs its classifier"):
        dynsnip_hub.save_pretrained(headless, tmp_path / "headless")
    too_many = detector(test_num_snippets=dynsnip_hub.validate.MAX_SNIPPETS + 1)
    with pytest.raises(ValueError, match=r"model_args.test_num_snippets = 257: expected an integer from 1 to 256"):
        dynsnip_hub.save_pretrained(too_many, tmp_path / "too_many")
    assert not any(tmp_path.iterdir())
    for bad in (0, 2.5):
        with pytest.raises(ValueError, match=rf"num_snippets = {bad}: expected an integer >= 1"):
            detector(num_snippets=bad)
    dynsnip.load_model(dynsnip_hub.save_pretrained(detector(test_num_snippets=256), tmp_path / "fits"))


def test_model_card_metadata_and_usage(local_hub: LocalHub) -> None:
    push_detector(local_hub)
    assert local_hub.requests_to("/api/validate-yaml", "POST")[0].status == 200  # the hub accepted the metadata
    card_text = local_hub.files(REPO)["README.md"].decode()
    card = ModelCard(card_text)
    assert card.data.library_name == "timm"
    assert {"video-classification", "deepfake-detection"} <= set(card.data.tags)
    assert card.data.pipeline_tag == "video-classification"
    assert card.data.base_model == BASE_REPO
    assert f'timm.create_model("hf-hub:{REPO}", pretrained=True)' in card.text
    assert "import dynsnip" in card.text
    assert f"dynsnip predict --checkpoint hf-hub:{REPO} video.mp4" in card.text


def test_training_and_evaluation_records_in_config_card_and_model_index(local_hub: LocalHub, tmp_path: Path) -> None:
    report = {"overall": {"auc": 0.75, "accuracy": 0.5, "num_videos": 4, "num_real": 2, "num_fake": 2},
              "per_method": {"DF": {"auc": float("nan"), "accuracy": 1.0, "num_videos": 3, "num_real": 2, "num_fake": 1},
                             "NT": {"auc": 0.5, "accuracy": 0.5, "num_videos": 3, "num_real": 2, "num_fake": 1}},
              "threshold": 0.5, "num_failed": 0}
    val = evaluation_record(report, data="FF++ c23", split="val", num_snippets=8, snippet_len=4, source="dynsnip train, epoch 3")
    nan_auc = evaluation_record(dict(report, overall=dict(report["overall"], auc=float("nan"))), data="one class")
    training = training_record({"lr": 1e-4, "epochs": 30, "betas": (0.9, 0.999), "lr_factor": 0.1, "plateau_patience": 2,
                                "monitor": "auc"}, epoch=3, data="FF++ c23", num_val_videos=4)
    model = detector()
    dynsnip_hub.push_to_hub(model, REPO, token="hf_test", training=training, evaluation=[val, nan_auc], license="mit")
    assert local_hub.requests_to("/api/validate-yaml", "POST")[0].status == 200  # model-index accepted
    # config.json is strict JSON (an AUC of one class is NaN: it is stored as null) and timm ignores the records
    config = json.loads(local_hub.files(REPO)["config.json"], parse_constant=lambda c: pytest.fail(f"{c} in config.json"))
    assert config["training"]["recipe"]["betas"] == [0.9, 0.999] and config["training"]["epoch"] == 3
    assert config["evaluation"][0]["per_method"]["DF"]["auc"] is None and config["evaluation"][1]["overall"]["auc"] is None
    assert torch.equal(outputs(model, clips(model)), outputs(timm.create_model(f"hf-hub:{REPO}", pretrained=True), clips(model)))
    card = ModelCard(local_hub.files(REPO)["README.md"].decode())
    assert {(r.dataset_name, r.dataset_split, r.metric_type, r.metric_value) for r in card.data.eval_results} == {
        ("FF++ c23", "val", "roc_auc", 0.75), ("FF++ c23", "val", "accuracy", 0.5), ("one class", None, "accuracy", 0.5)}
    assert "| FF++ c23 [val]: DF | 8 x 4 | 2 / 1 | n/a | 1.0000 | dynsnip train, epoch 3 |" in card.text
    assert "these weights are from epoch 3" in card.text and "Adam, lr 0.0001" in card.text
    assert "| FF++ c23 [val]: NT |" in card.text and "| one class: NT |" in card.text
    assert "lr x 0.1 when the validation auc has not improved for 3 epochs" in card.text
    # a test result added later keeps what is there, and the card's licence
    folder = dynsnip_hub.save_pretrained(model, tmp_path / "saved", training=training, evaluation=[val], license="mit")
    assert record_evaluation(folder, evaluation_record(report, data="Celeb-DF", split="test")) is True
    card = ModelCard.load(folder / "README.md")
    assert card.data.license == "mit" and "| Celeb-DF [test] |" in card.text and "| FF++ c23 [val] |" in card.text
    assert [e["data"] for e in json.loads((folder / "config.json").read_text())["evaluation"]] == ["FF++ c23", "Celeb-DF"]
    # pushing the folder re-renders its generated card for the repo, records included
    dynsnip_hub.push_to_hub(folder, "me/from-folder", token="hf_test")
    pushed = local_hub.files("me/from-folder")["README.md"].decode()
    assert 'timm.create_model("hf-hub:me/from-folder"' in pushed and "| Celeb-DF [test] |" in pushed
    assert ModelCard(pushed).data.license == "mit"
    # a card edited by hand is never overwritten: not by a new result, not by a push
    edited = (folder / "README.md").read_text().replace("## Citation", "## Notes\nMy own words.\n\n## Citation")
    (folder / "README.md").write_text(edited)
    assert record_evaluation(folder, evaluation_record(report, data="DFDC", split="test")) is False
    assert (folder / "README.md").read_text() == edited
    assert len(json.loads((folder / "config.json").read_text())["evaluation"]) == 3  # the result is still recorded
    dynsnip_hub.push_to_hub(folder, "me/edited", token="hf_test")
    assert local_hub.files("me/edited")["README.md"].decode() == edited


def test_an_evaluation_record_needs_a_report() -> None:
    with pytest.raises(ValueError, match="needs an 'overall' dict of metrics"):
        evaluation_record({"auc": 0.9})


def test_a_card_without_records_has_no_training_or_evaluation(local_hub: LocalHub) -> None:
    push_detector(local_hub)
    card = ModelCard(local_hub.files(REPO)["README.md"].decode())
    assert "## Training" not in card.text and "## Evaluation" not in card.text and not card.data.eval_results
    assert "training" not in json.loads(local_hub.files(REPO)["config.json"])


def test_push_keeps_an_edited_card_and_validates_new_ones(local_hub: LocalHub) -> None:
    model = push_detector(local_hub)
    files = local_hub.files(REPO)
    files["README.md"] = b"---\nlibrary_name: timm\n---\n# edited by hand\n"
    local_hub.add_repo(REPO, files, "edit card")
    model.fc.bias.data += 1
    local_hub.clear_log()
    with pytest.warns(UserWarning, match="edited by hand"):
        dynsnip_hub.push_to_hub(model, REPO, token="hf_test")
    assert local_hub.files(REPO)["README.md"].endswith(b"# edited by hand\n")
    assert local_hub.requests_to("/api/validate-yaml") == []  # no card uploaded, none validated
    dynsnip_hub.push_to_hub(model, REPO, token="hf_test", replace_card=True)
    assert local_hub.requests_to("/api/validate-yaml")[0].status == 200
    assert b"# my-detector" in local_hub.files(REPO)["README.md"]


def test_push_refuses_to_replace_another_detector_unless_asked(local_hub: LocalHub, tmp_path: Path, capsys,
                                                               monkeypatch) -> None:
    """New weights of the same detector are an update; a detector of other model options (another
    head, other snippets) pushed over it would change what everyone loading hf-hub:REPO gets, so it
    is refused before anything is uploaded unless replace_model / --replace-model (or a PR)."""
    from dynsnip.cli import main
    from dynsnip.hub.save import OtherDetectorError

    push_detector(local_hub)
    before = local_hub.files(REPO)
    updated = detector()
    updated.fc.bias.data += 1
    dynsnip_hub.push_to_hub(updated, REPO, token="hf_test")  # same detector, new weights: fine
    assert local_hub.files(REPO)["model.safetensors"] != before["model.safetensors"]
    current = local_hub.files(REPO)
    other = detector(num_classes=3)
    with pytest.raises(OtherDetectorError, match=r"already holds another detector \(model_args.num_classes: 1 -> 3"):
        dynsnip_hub.push_to_hub(other, REPO, token="hf_test")
    assert local_hub.files(REPO) == current  # nothing uploaded
    folder = tmp_path / "other"
    dynsnip.save_pretrained(other, folder)
    monkeypatch.setenv("HF_TOKEN", "hf_test")
    assert main(["push", str(folder), REPO]) == 2
    assert "--replace-model" in capsys.readouterr().err and local_hub.files(REPO) == current
    assert main(["push", str(folder), REPO, "--replace-model"]) == 0
    assert json.loads(local_hub.files(REPO)["config.json"])["num_classes"] == 3


# ------------------------------------------------------------------ loading & errors
def test_load_model_takes_only_safetensors_from_imagenet_repo(local_hub: LocalHub, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    served = serve_imagenet_resnet(local_hub, extra_files={"pytorch_model.bin": pickle_bomb(marker)})
    model = dynsnip_hub.load_model(f"dil_{BASE}.{TAG}", num_classes=1)
    weights = model.state_dict()
    assert all(torch.equal(weights[k], v) for k, v in served.items() if not k.startswith("fc."))
    assert local_hub.requests_to("pytorch_model.bin") == []
    assert not marker.exists()


def test_a_pickled_checkpoint_is_never_unpickled(local_hub: LocalHub, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    bomb = pickle_bomb(marker)
    # (a) a dynsnip repo where someone replaced the weights by a pickle: nothing even downloads it
    push_detector(local_hub)
    files = {k: v for k, v in local_hub.files(REPO).items() if k != "model.safetensors"}
    local_hub.add_repo(REPO, {**files, "pytorch_model.bin": bomb}, "swap weights")
    with pytest.raises(ModelFileNotFoundError, match=f"Hub repo '{REPO}' has no file 'model.safetensors'"):
        dynsnip_hub.load_model(HUB_ID)
    with pytest.raises(Exception):
        timm.create_model(f"hf-hub:{REPO}", pretrained=True)  # config.json names model.safetensors
    assert local_hub.requests_to("pytorch_model.bin") == []
    # (b) a timm-style repo with only a pickle: plain timm, through a dil_* builder, asks for model.safetensors only
    serve_imagenet_resnet(local_hub, with_safetensors=False, extra_files={"pytorch_model.bin": bomb})
    with pytest.raises(ModelFileNotFoundError, match=f"'{BASE_REPO}' has no file 'model.safetensors'. dil_\\* weights"):
        timm.create_model(f"dil_{BASE}.{TAG}", pretrained=True)
    assert local_hub.requests_to(f"/{BASE_REPO}/resolve/main/pytorch_model.bin", "GET") == []
    with pytest.raises(ModelFileNotFoundError, match=f"'{BASE_REPO}' has no file 'model.safetensors'"):
        dynsnip_hub.load_model(f"dil_{BASE}.{TAG}")
    # (c) a pickle disguised as model.safetensors is rejected by the safetensors parser
    local_hub.add_repo(REPO, {**files, "model.safetensors": bomb}, "disguised pickle")
    with pytest.raises(CheckpointMismatchError, match=f"model.safetensors of Hub repo '{REPO}' is not a valid"):
        dynsnip_hub.load_model(HUB_ID)
    assert not marker.exists()


def test_dynsnip_never_calls_torch_load_without_weights_only() -> None:
    package = Path(dynsnip.__file__).parent
    calls = []
    for source in package.rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load" \
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "torch":
                safe = any(k.arg == "weights_only" and getattr(k.value, "value", None) is True for k in node.keywords)
                calls.append((f"{source.relative_to(package)}:{node.lineno}", safe))
    assert [where for where, safe in calls if not safe] == []


@pytest.mark.parametrize("name, message, advice, url", [
    ("hf-hub:me/no-such-repo", "Hub repo 'me/no-such-repo' does not exist", "hf auth login",
     "/me/no-such-repo/resolve/main/config.json"),
    (f"{HUB_ID}@v9", f"Hub repo '{REPO}' (revision v9): no such branch, tag or commit", "Drop the '@v9'",
     f"/{REPO}/resolve/v9/config.json"),
])
def test_unknown_repo_or_revision(local_hub: LocalHub, name: str, message: str, advice: str, url: str) -> None:
    push_detector(local_hub)
    with pytest.raises(RepoNotFoundError) as caught:
        dynsnip_hub.load_model(name)
    assert str(caught.value).startswith(message) and advice in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__  # no timm/httpx traceback
    assert caught.value.original is not None
    assert local_hub.requests_to(url, "HEAD")[0].status == 404


def test_plain_timm_reports_an_unknown_repo(local_hub: LocalHub) -> None:
    with pytest.raises(RepositoryNotFoundError, match="me/no-such-repo"):
        timm.create_model("hf-hub:me/no-such-repo", pretrained=True)


def test_plain_timm_takes_a_detector_from_safetensors_only(local_hub: LocalHub, tmp_path: Path) -> None:
    """A detector repo or folder whose config.json does not name model.safetensors (hand-made, or
    edited), holding only pytorch_model.bin: plain timm would load the pickle; a dil_* builder refuses."""
    model = push_detector(local_hub)
    files = local_hub.files(REPO)
    config = json.loads(files["config.json"])
    config["pretrained_cfg"].pop("hf_hub_filename")
    pickled = tmp_path / "w.bin"
    torch.save(model.state_dict(), pickled)
    local_hub.add_repo(REPO, {"config.json": json.dumps(config).encode(), "pytorch_model.bin": pickled.read_bytes()})
    with pytest.raises(ModelFileNotFoundError, match=f"Hub repo '{REPO}' has no file 'model.safetensors'"):
        timm.create_model(HUB_ID, pretrained=True)
    assert local_hub.requests_to("pytorch_model.bin") == []
    config["pretrained_cfg"]["hf_hub_filename"] = "pytorch_model.bin"
    local_hub.add_repo(REPO, {"config.json": json.dumps(config).encode(), "pytorch_model.bin": pickled.read_bytes()})
    with pytest.raises(RuntimeError, match="names the weights file 'pytorch_model.bin'; dil_\\* weights load from safetensors only"):
        timm.create_model(HUB_ID, pretrained=True)
    folder = dynsnip.save_pretrained(model, tmp_path / "det")
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(pickled.read_bytes())
    with pytest.raises(RuntimeError, match=r"holds no model.safetensors \(it has pytorch_model.bin\)"):
        timm.create_model(f"local-dir:{folder}", pretrained=True)


def test_extra_classifier_tensors_in_a_detector_are_refused(tmp_path: Path) -> None:
    model = detector()
    folder = dynsnip.save_pretrained(model, tmp_path / "det")
    weights = safetensors.torch.load_file(folder / "model.safetensors")
    weights["fc.extra"] = torch.zeros(3)
    safetensors.torch.save_file(weights, folder / "model.safetensors")
    for load in (lambda: dynsnip_hub.load_model(folder), lambda: timm.create_model(f"local-dir:{folder}", pretrained=True)):
        with pytest.raises(ValueError, match=r"1 tensors the model does not have \(fc.extra\)"):
            load()


def test_a_detector_loaded_with_other_classes_or_a_headless_file_gets_the_fix_named(local_hub: LocalHub,
                                                                                   tmp_path: Path) -> None:
    push_detector(local_hub)
    with pytest.raises(ValueError, match=r"head has 1 classes and the model 3.*reset_classifier\(3\) to train a new head"):
        timm.create_model(HUB_ID, pretrained=True, num_classes=3)
    file = tmp_path / "det.safetensors"
    safetensors.torch.save_file(detector().state_dict(), file)
    with pytest.raises(ValueError, match=r"saved classifier has 1 classes, as the model, but the pretrained config says "
                                         r"1000.*pretrained_cfg_overlay=dict\(\.\.\., num_classes=1\)"):
        timm.create_model(f"dil_{BASE}", num_classes=1, pretrained=True, pretrained_cfg_overlay=dict(file=str(file)))
    loaded = timm.create_model(f"dil_{BASE}", num_classes=1, pretrained=True,
                               pretrained_cfg_overlay=dict(file=str(file), num_classes=1))
    assert torch.equal(loaded.fc.weight, detector().fc.weight)
    headless = tmp_path / "r.safetensors"  # a 2D ResNet without its fc: the 1000 classes would stay random
    safetensors.torch.save_file({k: v for k, v in timm.create_model(BASE).state_dict().items()
                                 if not k.startswith("fc.")}, headless)
    with pytest.raises(ValueError, match=r"it has no classifier \(fc.weight, fc.bias\).*num_classes=0"):
        timm.create_model(f"dil_{BASE}", pretrained=True, pretrained_cfg_overlay=dict(file=str(headless)))
    features = timm.create_model(f"dil_{BASE}", pretrained=True, num_classes=0, pretrained_cfg_overlay=dict(file=str(headless)))
    assert features.num_classes == 0


def test_torchscript_is_refused_with_the_reason_and_the_alternatives() -> None:
    model = timm.create_model(f"dil_{BASE}", num_classes=1)
    with pytest.raises(TypeError, match="cannot be compiled by TorchScript.*torch.export.*torch.compile"):
        torch.jit.script(model)
    with pytest.raises(TypeError, match="cannot be compiled by TorchScript"):
        timm.create_model(f"dil_{BASE}", scriptable=True)


def test_missing_weights_file_online(local_hub: LocalHub) -> None:
    push_detector(local_hub)
    files = {k: v for k, v in local_hub.files(REPO).items() if k != "model.safetensors"}
    local_hub.add_repo(REPO, files, "delete weights")
    with pytest.raises(ModelFileNotFoundError) as caught:
        dynsnip_hub.load_model(HUB_ID)
    assert caught.value.filename == "model.safetensors" and caught.value.source == REPO
    assert f"dynsnip.push_to_hub(model, '{REPO}')" in str(caught.value)


def test_offline_without_the_files_in_the_cache(local_hub: LocalHub, monkeypatch: pytest.MonkeyPatch) -> None:
    push_detector(local_hub)
    dynsnip_hub.load_model(HUB_ID, pretrained=False)  # caches config.json only
    go_offline(monkeypatch)
    local_hub.clear_log()
    with pytest.raises(NotCachedError) as caught:
        dynsnip_hub.load_model(HUB_ID)
    message = str(caught.value)
    assert message.startswith(f"'model.safetensors' of Hub repo '{REPO}' is not in the local cache")
    assert "HF_HUB_OFFLINE=1" in message and f"hf download {REPO}" in message
    with pytest.raises(NotCachedError, match="'config.json' of Hub repo 'me/other'"):
        dynsnip_hub.load_model("hf-hub:me/other")
    assert local_hub.requests == []


def test_unreachable_hub_without_the_files_in_the_cache(local_hub: LocalHub, monkeypatch: pytest.MonkeyPatch) -> None:
    """Online mode, but nothing listens at HF_ENDPOINT (issue 12, item 14): no retries with back-off,
    one error naming the endpoint, the cache and HF_HUB_OFFLINE; what is cached still loads."""
    import huggingface_hub.constants as constants
    import huggingface_hub.utils._http as hf_http

    push_detector(local_hub)
    dynsnip_hub.load_model(HUB_ID, pretrained=False)  # caches config.json only
    endpoint = local_hub.endpoint
    local_hub.stop()  # the port is closed from now on: new connections are refused
    hf_http.close_session()  # drop the client's kept-alive connection to the stopped server
    slept: list[float] = []
    monkeypatch.setattr(hf_http, "time", type("NoSleep", (), {"sleep": staticmethod(slept.append)}))
    assert not constants.is_offline_mode()
    with pytest.raises(NotCachedError) as caught:
        dynsnip_hub.load_model(HUB_ID)
    message = str(caught.value)
    assert message.startswith(f"'model.safetensors' of Hub repo '{REPO}' is not in the local cache (")
    assert f"the Hub at {endpoint} cannot be reached (connection refused), so it was not retried" in message
    assert "HF_HUB_OFFLINE=1" in message and "\n" not in message
    assert slept == [], "a refused connection must not be retried with back-off"
    assert not constants.is_offline_mode()  # the cache-only switch is put back
    assert dynsnip_hub.load_model(HUB_ID, pretrained=False).snippet_len == 4  # the cached config.json still loads


def test_weights_of_another_architecture(local_hub: LocalHub) -> None:
    vit = timm.create_model("test_vit")
    serve_imagenet_resnet(local_hub, weights=safetensors_bytes(vit.state_dict()))
    with pytest.raises(CheckpointMismatchError) as caught:
        dynsnip_hub.load_model(f"dil_{BASE}.{TAG}")
    message = str(caught.value)
    assert message.startswith(f"model.safetensors of Hub repo '{BASE_REPO}' does not fit dil_{BASE}")
    assert "backbone tensors missing (conv1.0.weight" in message and "another architecture" in message
    assert f"dil_{BASE}: dil_{BASE}" not in message
    # plain timm: the DIL checkpoint filter names the problem too
    with pytest.raises(ValueError, match=r"checkpoint does not fit.*conv1\.0\.weight"):
        timm.create_model(f"dil_{BASE}.{TAG}", pretrained=True)


def test_weights_of_another_sim_configuration(local_hub: LocalHub) -> None:
    push_detector(local_hub, sim_stages=[3])
    other = detector(sim_stages=[1, 2, 3, 4])
    files = local_hub.files(REPO)
    files["model.safetensors"] = safetensors_bytes(other.state_dict())
    local_hub.add_repo(REPO, files, "wrong weights")
    with pytest.raises(CheckpointMismatchError, match=r"tensors the model does not have \(layer1\.0\.sim\."):
        dynsnip_hub.load_model(HUB_ID)


@pytest.mark.parametrize("key", ["layer3.0.sim", "fc.weight"])
def test_mis_shaped_tensor(local_hub: LocalHub, key: str) -> None:
    model = push_detector(local_hub)
    state = model.state_dict()
    name = key if key in state else next(k for k in state if k.startswith(key) and state[k].ndim >= 2)
    state[name] = torch.zeros(state[name].shape[0] + 1, *state[name].shape[1:])
    files = local_hub.files(REPO)
    files["model.safetensors"] = safetensors_bytes(state)
    local_hub.add_repo(REPO, files, "mis-shaped")
    with pytest.raises(CheckpointMismatchError) as caught:
        dynsnip_hub.load_model(HUB_ID)
    assert caught.value.filename == "model.safetensors"
    assert name in str(caught.value) and f"Hub repo '{REPO}'" in str(caught.value)


def test_an_image_model_repo_is_not_a_detector(local_hub: LocalHub) -> None:
    serve_imagenet_resnet(local_hub)
    with pytest.raises(NotADILModelError, match=rf"config.json describes '{BASE}', an image model.*'dil_{BASE}.{TAG}'"):
        dynsnip_hub.load_model(f"hf-hub:{BASE_REPO}")
    assert local_hub.requests_to("model.safetensors") == []  # refused before downloading weights
    with pytest.raises(NotADILModelError, match=r"'resnet50.tv_in1k' is an image model.*load_model\('dil_resnet50.tv_in1k'\)"):
        dynsnip_hub.load_model("resnet50.tv_in1k")


def test_local_directory_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelFileNotFoundError, match="does not exist"):
        dynsnip_hub.load_model(tmp_path / "nowhere")
    dynsnip_hub.save_pretrained(detector(), tmp_path)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(ModelFileNotFoundError, match=r"has no 'model.safetensors'.*save_pretrained"):
        dynsnip_hub.load_model(str(tmp_path))


def test_top_level_api_is_exported() -> None:
    assert dynsnip.save_pretrained is dynsnip_hub.save_pretrained
    assert dynsnip.push_to_hub is dynsnip_hub.push_to_hub
    assert dynsnip.load_model is dynsnip_hub.load_model


# ------------------------------------------------------------ issue 21: items 11, 14, 16
def test_a_bare_owner_name_is_a_path_and_never_downloaded(local_hub: LocalHub, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Item 14: a mistyped folder that looks like owner/name, or a link that loops, is reported as
    such, with the hf-hub: spelling for a repo; nothing is asked of the Hub. hf-hub: still loads."""
    from dynsnip.engine import build_model

    push_detector(local_hub)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "loop").symlink_to("loop")  # a folder symlinked to itself
    local_hub.clear_log()
    for load in (dynsnip_hub.load_model, build_model):
        with pytest.raises(ModelFileNotFoundError) as caught:
            load(REPO)
        assert str(caught.value).startswith(f"no folder {REPO} (directory '{REPO}' does not exist); "
                                            f"for a Hub repo write hf-hub:{REPO}.")
        with pytest.raises(ModelFileNotFoundError, match="'runs/loop' is a symbolic link that leads to no folder: "
                                                         "it loops back to itself"):
            load("runs/loop")
    assert local_hub.requests == []
    assert dynsnip_hub.load_model(HUB_ID).snippet_len == 4 and local_hub.requests_to("model.safetensors")


@pytest.mark.parametrize("dtype", [torch.int64, torch.bool, torch.uint8])
def test_integer_or_bool_weights_are_refused_in_every_load_route(local_hub: LocalHub, tmp_path: Path,
                                                                 dtype: torch.dtype) -> None:
    """Item 11: a tensor of the right shape but another dtype does not load by silent casting:
    neither from the Hub, nor from a folder, nor through plain timm; a half-precision copy does."""
    model = push_detector(local_hub)
    state = model.state_dict()
    key = "layer2.0.conv1.weight"
    state[key] = (state[key] > 0).to(dtype)
    files = local_hub.files(REPO)
    files["model.safetensors"] = safetensors_bytes(state)
    local_hub.add_repo(REPO, files, "integer weights")
    folder = dynsnip.save_pretrained(model, tmp_path / "detector")
    safetensors.torch.save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "model.safetensors"))
    name = str(dtype).removeprefix("torch.")
    for source, where in ((HUB_ID, f"Hub repo '{REPO}'"), (str(folder), f"directory '{folder}'")):
        with pytest.raises(CheckpointMismatchError) as caught:
            dynsnip_hub.load_model(source)
        message = str(caught.value)
        assert message.startswith(f"model.safetensors of {where} does not fit dil_{BASE}: 1 of another dtype "
                                  f"({key}: {name} in the file where the model has float32)"), message
        assert "\n" not in message
    with pytest.raises(ValueError, match=rf"{key}: {name} in the file where the model has float32"):
        timm.create_model(f"local-dir:{folder}", pretrained=True)
    half = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    safetensors.torch.save_file(half, str(folder / "model.safetensors"))
    loaded = dynsnip_hub.load_model(str(folder))
    assert loaded.layer2[0].conv1.weight.dtype == torch.float32
    assert torch.equal(loaded.layer2[0].conv1.weight, half[key].float())


def test_timm_pretrained_tag_fails_fast_in_one_line_without_the_hub(local_hub: LocalHub,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Item 16: plain timm.create_model("dil_<resnet>.<tag>", pretrained=True) with the Hub down:
    no retries with back-off, one line naming the file, the cache, HF_HUB_OFFLINE and
    pretrained=False; with HF_HUB_OFFLINE=1 the same. Cached weights still load, at once."""
    import huggingface_hub.constants as constants
    import huggingface_hub.utils._http as hf_http

    serve_imagenet_resnet(local_hub)
    endpoint = local_hub.endpoint
    local_hub.stop()  # nothing listens at HF_ENDPOINT from now on: connections are refused
    hf_http.close_session()
    slept: list[float] = []
    monkeypatch.setattr(hf_http, "time", type("NoSleep", (), {"sleep": staticmethod(slept.append)}))
    with pytest.raises(NotCachedError) as caught:
        timm.create_model(f"dil_{BASE}.{TAG}", pretrained=True)
    message = str(caught.value)
    assert message.startswith(f"'model.safetensors' of Hub repo '{BASE_REPO}' is not in the local cache "
                              f"({constants.HF_HUB_CACHE}) and the Hub at {endpoint} cannot be reached "
                              "(connection refused), so it was not retried.")
    assert "HF_HUB_OFFLINE=1" in message and "pretrained=False" in message and "\n" not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__  # no huggingface_hub traceback
    assert slept == [], "a refused connection must not be retried with back-off"
    assert not constants.is_offline_mode()  # the cache-only switch is put back
    go_offline(monkeypatch)
    with pytest.raises(NotCachedError, match=r"HF_HUB_OFFLINE=1 forbids downloading it.*pretrained=False"):
        timm.create_model(f"dil_{BASE}.{TAG}", pretrained=True)


def test_timm_pretrained_tag_loads_from_the_cache_when_the_hub_is_down(local_hub: LocalHub,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.utils._http as hf_http

    served = serve_imagenet_resnet(local_hub)
    timm.create_model(f"dil_{BASE}.{TAG}", pretrained=True)  # fills the cache
    local_hub.stop()
    hf_http.close_session()
    slept: list[float] = []
    monkeypatch.setattr(hf_http, "time", type("NoSleep", (), {"sleep": staticmethod(slept.append)}))
    model = timm.create_model(f"dil_{BASE}.{TAG}", pretrained=True)
    assert torch.equal(model.conv1[0].weight, served["conv1.0.weight"]) and slept == []


def test_a_result_recorded_again_replaces_the_earlier_one_and_a_longer_recipe_is_recorded(tmp_path: Path) -> None:
    """Two `evaluate --record` of one dataset and split: one entry (the latest), not one model-index
    entry with every metric twice. A run resumed with more epochs whose later epochs were not
    better keeps the earlier weights, and its card says the recipe that ran."""
    from dynsnip.hub.records import update_training_recipe

    folder = dynsnip_hub.save_pretrained(detector(), tmp_path / "m", training=training_record(
        {"epochs": 1, "lr": 1e-4}, epoch=1, num_train_clips=8, data="tiny"))
    first = {"overall": {"auc": 0.9, "accuracy": 0.8, "num_videos": 4}, "per_method": {}}
    second = {"overall": {"auc": 0.95, "accuracy": 0.85, "num_videos": 4}, "per_method": {}}
    for report in (first, second):
        record_evaluation(folder, evaluation_record(report, data="FF++ c23 tiny", split="test", num_snippets=2,
                                                    snippet_len=4, img_size=32, source="dynsnip evaluate"))
    record_evaluation(folder, evaluation_record(first, data="FF++ c23 tiny", split="validation", num_snippets=2,
                                                snippet_len=4, img_size=32, source="dynsnip evaluate"))
    evaluation = json.loads((folder / "config.json").read_text())["evaluation"]
    assert [r["split"] for r in evaluation] == ["test", "val"]  # stored as the manifest reader spells it
    card = ModelCard.load(folder / "README.md")
    results = card.data.eval_results or []
    assert sorted((r.dataset_split, r.metric_type, r.metric_value) for r in results if r.dataset_split == "test") == [
        ("test", "accuracy", 0.85), ("test", "roc_auc", 0.95)]

    assert update_training_recipe(folder, {"epochs": 2, "lr": 1e-4})
    config = json.loads((folder / "config.json").read_text())
    assert config["training"]["recipe"]["epochs"] == 2 and config["training"]["epoch"] == 1
    assert "| epochs | 2; these weights are from epoch 1 |" in (folder / "README.md").read_text()
    assert not update_training_recipe(folder, {"epochs": 2, "lr": 1e-4})  # nothing new



def test_validation_and_val_are_one_split_in_records_and_cards(tmp_path):
    """`dynsnip train` records its validation result and `dynsnip evaluate --split val --record` records
    one on the same rows: one split, spelt as the manifest reader spells it ("val"), so the card does
    not show "data [validation]" and "data [val]" side by side; a record saved with "validation"
    (before) renders exactly as one saved with "val", and a later "val" result replaces it."""
    from dynsnip.hub.card import model_card
    from dynsnip.hub.records import canonical_split

    assert [canonical_split(s) for s in ("validation", " Val ", "VALIDATION", "Train", "test", None, "")] == [
        "val", "val", "val", "train", "test", None, None]
    assert canonical_split("test (footage of other people)") == "test (footage of other people)"  # free text kept

    report = {"overall": {"auc": 0.9, "accuracy": 0.8, "num_videos": 4}, "per_method": {}}
    record = evaluation_record(report, data="faces.csv", split="validation", num_snippets=2, snippet_len=4,
                               img_size=32, source="dynsnip train, epoch 1")
    assert record["split"] == "val"
    folder = dynsnip_hub.save_pretrained(detector(), tmp_path / "m", evaluation=[record])
    later = evaluation_record({**report, "overall": {**report["overall"], "auc": 0.7}}, data="faces.csv", split="val",
                              num_snippets=2, snippet_len=4, img_size=32, source="dynsnip evaluate")
    record_evaluation(folder, later)
    config = json.loads((folder / "config.json").read_text())
    assert [(r["split"], r["source"]) for r in config["evaluation"]] == [("val", "dynsnip evaluate")]
    card = (folder / "README.md").read_text()
    assert "faces.csv [val]" in card and "[validation]" not in card

    # a config.json written before: its "validation" record renders as "val", in the table and the model-index
    old = {**config, "evaluation": [{**config["evaluation"][0], "split": "validation"}]}
    assert model_card(old) == model_card(config)
    # and a new "val" result replaces it rather than standing next to it
    (folder / "config.json").write_text(json.dumps(old))
    record_evaluation(folder, later)
    assert [r["split"] for r in json.loads((folder / "config.json").read_text())["evaluation"]] == ["val"]


# ------------------------------------------------------------------ audit D: the head
def edit_config(folder: Path, edit) -> Path:
    """``folder`` with its config.json changed by ``edit`` (which changes the dict in place)."""
    config = json.loads((folder / "config.json").read_text())
    edit(config)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.mark.parametrize("edit, shown", [
    (lambda c: c.update(num_classes=2),
     "num_classes = 2, model_args.num_classes = 1, pretrained_cfg.num_classes = 1: expected one number of classes"),
    (lambda c: c["pretrained_cfg"].update(num_classes=2),
     "num_classes = 1, model_args.num_classes = 1, pretrained_cfg.num_classes = 2: expected one number of classes"),
    (lambda c: (c.pop("num_classes"), c["pretrained_cfg"].pop("num_classes")),
     "model_args.num_classes = 1 but no top-level num_classes (or pretrained_cfg.num_classes), which timm then "
     "takes as 1000"),
])
def test_a_config_whose_num_classes_disagree_never_loads_a_random_head(local_hub: LocalHub, tmp_path: Path,
                                                                      edit, shown: str) -> None:
    """timm copies config.json's top-level num_classes into pretrained_cfg and drops the saved
    classifier when the model's differ: load_model refuses such a config, and plain timm (local-dir:
    and hf-hub:) refuses to drop a saved detector's head, instead of running a random one."""
    folder = edit_config(dynsnip.save_pretrained(detector(), tmp_path / "det"), edit)
    with pytest.raises(dynsnip_hub.InvalidConfigError) as caught:
        dynsnip_hub.load_model(folder)
    assert shown in str(caught.value) and "drop the saved classifier" in str(caught.value)
    local_hub.add_repo(REPO, {p.name: p.read_bytes() for p in folder.iterdir()})
    with pytest.raises(dynsnip_hub.InvalidConfigError, match=f"Hub repo '{REPO}'"):
        dynsnip_hub.load_model(HUB_ID)
    top = json.loads((folder / "config.json").read_text()).get("num_classes")
    if top == 2 or top is None:  # timm's pretrained_cfg then says 2 (or 1000) classes for a 1-class model
        for name in (f"local-dir:{folder}", HUB_ID):
            with pytest.raises(ValueError, match="timm would drop the saved classifier"):
                timm.create_model(name, pretrained=True)


def test_a_head_of_another_shape_than_config_json_says_is_refused(tmp_path: Path) -> None:
    """config.json agrees with itself (2 classes) but the weights hold a 1-class head: refused
    naming fc.weight, not loaded with a random head."""
    folder = edit_config(dynsnip.save_pretrained(detector(), tmp_path / "det"), lambda c: (
        c.update(num_classes=2), c["model_args"].update(num_classes=2), c["pretrained_cfg"].update(num_classes=2)))
    with pytest.raises(CheckpointMismatchError, match=r"mis-shaped \(fc\.weight: checkpoint \(1, "):
        dynsnip_hub.load_model(folder)
    with pytest.raises(ValueError, match=r"fc\.weight: checkpoint \(1, "):
        timm.create_model(f"local-dir:{folder}", pretrained=True)


def test_features_of_a_saved_detector_still_load_without_its_head(tmp_path: Path) -> None:
    """features_only has no head: timm drops it by design, which is not refused."""
    model = detector()
    folder = dynsnip.save_pretrained(model, tmp_path / "det")
    features = timm.create_model(f"local-dir:{folder}", pretrained=True, features_only=True, out_indices=(4,))
    assert torch.equal(features.model.layer4[0].conv1.weight, model.layer4[0].conv1.weight)


def test_a_num_classes_override_never_drops_the_saved_head_silently(local_hub: LocalHub, tmp_path: Path) -> None:
    """load_model(saved, num_classes=N) used to drop the trained head for a random one; now it is
    refused unless replace_head=True, which loads the detector completely, then starts a new head
    with a warning and without the training record. The saved count itself still loads."""
    model = detector()
    folder = dynsnip.save_pretrained(model, tmp_path / "det", training=training_record({"epochs": 1}, data="tiny"))
    push_detector(local_hub)
    for source, where in ((folder, f"directory '{folder}'"), (HUB_ID, f"Hub repo '{REPO}'")):
        with pytest.raises(CheckpointMismatchError, match=rf"^{where} is a detector with a 1-class head: "
                                                          r"load_model\(\.\.\., num_classes=2\) would drop it"):
            dynsnip_hub.load_model(source, num_classes=2)
        with pytest.warns(UserWarning, match=r"the saved 1-class head was dropped for a new, randomly initialised "
                                             r"2-class head"):
            replaced = dynsnip_hub.load_model(source, num_classes=2, replace_head=True)
        assert replaced.num_classes == 2 and replaced.fc.weight.shape == (2, replaced.num_features)
        assert replaced.training_record is None
        assert torch.equal(replaced.layer3[0].conv1.weight, model.layer3[0].conv1.weight)  # the rest is the saved one
    assert dynsnip_hub.load_model(folder, num_classes=1).training_record["data"] == "tiny"
    assert dynsnip_hub.load_model(folder, pretrained=False, num_classes=3).num_classes == 3  # no weights, no head


@pytest.mark.parametrize("option, shown", [
    (dict(num_classes=0), "num_classes = 0: expected an integer >= 1"),
    (dict(num_classes=-1), "num_classes = -1: expected an integer >= 1"),
    (dict(test_num_snippets=1000), "test_num_snippets = 1000: expected an integer from 1 to 256"),
    (dict(snippet_len=0), "snippet_len = 0: expected an integer >= 1"),
])
def test_options_passed_to_load_model_are_checked_like_config_json(tmp_path: Path, option: dict, shown: str) -> None:
    folder = dynsnip.save_pretrained(detector(), tmp_path / "det")
    with pytest.raises(dynsnip_hub.InvalidConfigError, match=rf"^directory '{folder}': load_model option {shown}\."):
        dynsnip_hub.load_model(folder, **option, replace_head=True)
    if option.get("num_classes") == 0:  # an ImageNet backbone without a head is a feature extractor
        assert dynsnip_hub.load_model(f"dil_{BASE}", pretrained=False, num_classes=0).num_classes == 0


# ------------------------------------------------------------------ audit D: pushing
def test_in_chans_other_than_3_saves_every_input_size_with_its_channels(local_hub: LocalHub, tmp_path: Path) -> None:
    """A tag whose pretrained config has a test_input_size (RGB) and a 1-channel model: the saved
    sizes all say 1 channel (the save used to refuse its own config), the folder loads, it pushes."""
    gray = timm.create_model("dil_resnet18.a1_in1k", pretrained=False, num_classes=1, in_chans=1)
    folder = dynsnip.save_pretrained(gray, tmp_path / "gray")
    cfg = json.loads((folder / "config.json").read_text())["pretrained_cfg"]
    assert cfg["input_size"] == [1, 224, 224] and cfg["test_input_size"][0] == 1
    assert dynsnip_hub.load_model(folder).conv1.in_channels == 1
    dynsnip_hub.push_to_hub(gray, "me/gray", token="hf_test")
    assert json.loads(local_hub.files("me/gray")["config.json"])["pretrained_cfg"]["test_input_size"][0] == 1


def test_a_refused_save_creates_nothing_on_the_hub(local_hub: LocalHub) -> None:
    """push_to_hub runs save_pretrained's checks before it creates the repo."""
    headless = detector()
    headless.reset_classifier(0)
    with pytest.raises(ValueError, match=r"num_classes = 0.*needs its classifier"):
        dynsnip_hub.push_to_hub(headless, "me/headless", token="hf_test")
    assert not local_hub.has_repo("me/headless") and local_hub.requests_to("/api/repos/create") == []


def test_a_repush_renders_the_generated_card_again_and_warns_about_an_edited_one(local_hub: LocalHub,
                                                                                tmp_path: Path, capsys) -> None:
    """The repo's card that dynsnip rendered shows the new results and licence after a re-push (it
    used to keep the first push's, as if edited by hand); without license= its licence is kept. A
    card edited by hand is kept with a warning that names what did not reach it (one line from
    dynsnip push)."""
    from dynsnip.cli import main

    def results(auc: float) -> list[dict]:
        return [evaluation_record({"overall": {"auc": auc, "accuracy": 0.8}}, data="FF++", split="test")]

    model = detector()
    dynsnip_hub.push_to_hub(model, REPO, token="hf_test", evaluation=results(0.91), license="apache-2.0")
    dynsnip_hub.push_to_hub(model, REPO, token="hf_test", evaluation=results(0.55), license="mit")
    card = ModelCard(local_hub.files(REPO)["README.md"].decode())
    assert card.data.license == "mit" and [r.metric_value for r in card.data.eval_results if r.metric_type == "roc_auc"] == [0.55]
    dynsnip_hub.push_to_hub(model, REPO, token="hf_test", evaluation=results(0.6))
    card = ModelCard(local_hub.files(REPO)["README.md"].decode())
    assert card.data.license == "mit" and "0.6" in card.text  # no license=: the card's own is kept

    files = local_hub.files(REPO)
    files["README.md"] = b"---\nlibrary_name: timm\n---\n# edited by hand\n"
    local_hub.add_repo(REPO, files, "edit card")
    with pytest.warns(UserWarning, match=rf"README.md of {REPO} was edited by hand .* kept, so it does not show "
                                             r"this upload's training and evaluation records or licence 'mit'"):
        dynsnip_hub.push_to_hub(model, REPO, token="hf_test", evaluation=results(0.7), license="mit")
    assert local_hub.files(REPO)["README.md"].endswith(b"# edited by hand\n")
    folder = dynsnip.save_pretrained(model, tmp_path / "det")
    assert main(["push", str(folder), REPO, "--token", "hf_test", "--license", "mit"]) == 0
    err = capsys.readouterr().err
    assert err.startswith(f"dynsnip push: warning: the README.md of {REPO} was edited by hand") and err.count("\n") == 1


def test_a_card_saved_for_a_repo_is_recognised_and_rendered_for_the_next_one(local_hub: LocalHub,
                                                                            tmp_path: Path) -> None:
    """save_pretrained(..., repo_id=) renders the card for that repo: record_evaluation re-renders
    it (for the same repo) instead of taking it for one edited by hand, and a push of the folder to
    another repo names that repo, not the first."""
    from dynsnip.hub.records import card_is_generated

    folder = dynsnip.save_pretrained(detector(), tmp_path / "named", repo_id="me/first")
    assert card_is_generated(folder)
    assert record_evaluation(folder, evaluation_record({"overall": {"auc": 0.91, "accuracy": 0.8}}, data="FF++",
                                                       split="test"))
    card = (folder / "README.md").read_text()
    assert "0.91" in card and 'timm.create_model("hf-hub:me/first", pretrained=True)' in card
    dynsnip_hub.push_to_hub(folder, "me/second", token="hf_test")
    pushed = local_hub.files("me/second")["README.md"].decode()
    assert 'timm.create_model("hf-hub:me/second", pretrained=True)' in pushed and "me/first" not in pushed
    assert "0.91" in pushed


# ------------------------------------------------------------------ audit D: what loads
def test_non_finite_weights_never_load(local_hub: LocalHub, tmp_path: Path) -> None:
    """An infinite BN variance gave a finite, wrong verdict; NaN scores NaN: a saved detector with
    either is refused in every load route, naming the tensors, as save_pretrained refuses to write it."""
    model = detector()
    folder = dynsnip.save_pretrained(model, tmp_path / "det")
    state = model.state_dict()
    state["bn1.running_var"] = torch.full_like(state["bn1.running_var"], float("inf"))
    state["fc.weight"][0, 0] = float("nan")
    safetensors.torch.save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "model.safetensors"))
    local_hub.add_repo(REPO, {p.name: p.read_bytes() for p in folder.iterdir()})
    for source, where in ((folder, f"directory '{folder}'"), (HUB_ID, f"Hub repo '{REPO}'")):
        with pytest.raises(CheckpointMismatchError) as caught:
            dynsnip_hub.load_model(source)
        message = str(caught.value)
        assert message.startswith(f"model.safetensors of {where} does not fit dil_{BASE}: non-finite weights: 2 tensors hold "
                                  "NaN or inf (")
        assert "bn1.running_var" in message and "\n" not in message
    with pytest.raises(ValueError, match=r"tensors hold NaN or inf \(.*bn1\.running_var"):
        timm.create_model(f"local-dir:{folder}", pretrained=True)


def test_a_detector_with_its_own_input_size_keeps_no_imagenet_test_sizes(tmp_path: Path) -> None:
    """A tag with ImageNet test-time sizes (288 px) and a detector trained at 112 px: the saved
    config has no test_input_size / test_crop_pct, so timm's test-time data config crops 112 px."""
    from timm.data import resolve_data_config

    model = timm.create_model("dil_resnet18.a1_in1k", pretrained=False, num_classes=1)
    assert model.pretrained_cfg["test_input_size"] == (3, 288, 288)
    folder = dynsnip.save_pretrained(model, tmp_path / "det", pretrained_cfg={"input_size": (3, 112, 112)})
    cfg = json.loads((folder / "config.json").read_text())["pretrained_cfg"]
    assert not {"test_input_size", "test_crop_pct", "test_pool_size"} & set(cfg)
    data = resolve_data_config(model=dynsnip_hub.load_model(folder), use_test_size=True)
    assert data["input_size"] == (3, 112, 112) and data["crop_pct"] == cfg["crop_pct"]
    given = dynsnip.save_pretrained(model, tmp_path / "given", pretrained_cfg={
        "input_size": (3, 112, 112), "test_input_size": (3, 128, 128)})
    assert json.loads((given / "config.json").read_text())["pretrained_cfg"]["test_input_size"] == [3, 128, 128]


def test_push_to_a_missing_branch_names_it_and_creates_nothing(local_hub: LocalHub, tmp_path: Path, capsys) -> None:
    """--revision of a branch the repo lacks used to end in "404 Client Error." after creating the
    repo; now it is one line naming the branch and how to create it, and nothing is created."""
    from dynsnip.cli import main

    folder = dynsnip.save_pretrained(detector(), tmp_path / "det")
    assert main(["push", str(folder), "me/new", "--revision", "dev", "--token", "hf_test"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dynsnip push: error: --revision dev: me/new does not exist yet") and err.count("\n") == 1
    assert "hf repos branch create me/new dev" in err and not local_hub.has_repo("me/new")
    push_detector(local_hub)
    head = local_hub.head(REPO)
    with pytest.raises(ValueError, match=rf"^{REPO} has no branch 'dev': create it first with `hf repos branch "
                                         rf"create {REPO} dev`"):
        dynsnip_hub.push_to_hub(folder, REPO, token="hf_test", revision="dev")
    assert local_hub.head(REPO) == head
    dynsnip_hub.push_to_hub(folder, REPO, token="hf_test", revision="main")
    assert local_hub.head(REPO) != head
    # a bare name is the user's repo (as create_repo completes it): its branches are checked there, not in "name"
    import huggingface_hub

    owner, name = REPO.split("/")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(huggingface_hub.HfApi, "whoami", lambda self, *a, **k: {"name": owner})
        with pytest.raises(ValueError, match=rf"^{REPO} has no branch 'dev'"):  # was: "{name} does not exist yet"
            dynsnip_hub.push_to_hub(folder, name, token="hf_test", revision="dev")


@pytest.mark.parametrize("edit, shown", [
    (lambda c: c["pretrained_cfg"].update(new_field=1),
     "config.json cannot describe a working detector: pretrained_cfg has field(s) ['new_field'] that this timm's "
     "PretrainedCfg does not know"),
    (lambda c: c.pop("pretrained_cfg"), "config.json has no pretrained_cfg section"),
])
def test_a_config_json_of_another_version_names_the_field_not_model_args(tmp_path: Path, edit, shown: str) -> None:
    """An unknown pretrained_cfg field (a newer timm / dynsnip) or no pretrained_cfg used to be
    reported as model_args that do not build the model; the error names what is wrong and what to do."""
    folder = edit_config(dynsnip.save_pretrained(detector(), tmp_path / "det"), edit)
    with pytest.raises(dynsnip_hub.InvalidConfigError) as caught:
        dynsnip_hub.load_model(folder)
    message = str(caught.value)
    assert message.startswith(f"directory '{folder}': {shown}"), message
    assert "model_args" not in message and "upgrade dynsnip and timm" in message


@pytest.mark.parametrize("name", ["hf-hub:me/det/", "hf-hub:/me/det", "hf-hub:me/de..t"])
def test_a_malformed_hub_id_is_a_model_load_error(local_hub: LocalHub, name: str) -> None:
    """huggingface_hub's HFValidationError used to escape load_model (and every CLI handler that
    catches ModelLoadError); it is a RepoNotFoundError naming the id and the spelling expected."""
    with pytest.raises(RepoNotFoundError) as caught:
        dynsnip_hub.load_model(name)
    message = str(caught.value)
    assert message.startswith(f"'{name}' does not name a Hub repo (") and "Write hf-hub:owner/name" in message
    assert "repo_type" not in message and "\n" not in message
    assert local_hub.requests == []


def test_a_result_that_left_videos_out_says_so_in_config_card_and_model_index(tmp_path: Path) -> None:
    """--record of a benchmark with failed and missing test videos: the record keeps the counts, the card
    shows how many of the set's videos were scored, and the model-index split does not claim the whole
    split; a complete result and a record written before these counts render as before."""
    report = {"overall": {"auc": 0.8, "accuracy": 0.7, "num_videos": 6, "num_real": 2, "num_fake": 4, "num_failed": 2},
              "per_method": {"DF": {"auc": 0.9, "accuracy": 0.75, "num_videos": 4, "num_real": 2, "num_fake": 2,
                                    "num_failed": 1},
                             "NT": {"auc": 0.7, "accuracy": 0.5, "num_videos": 4, "num_real": 2, "num_fake": 2,
                                    "num_failed": 1}},
              "threshold": 0.5, "num_failed": 2}
    partial = evaluation_record(report, data="FF++ c23", split="test", missing_videos=3, source="dynsnip benchmark")
    assert (partial["num_failed"], partial["missing_videos"], partial["per_method"]["DF"]["num_failed"]) == (2, 3, 1)
    old = {"data": "Celeb-DF", "split": "test", "overall": {"auc": 0.6, "accuracy": 0.6, "num_videos": 9}}  # no counts
    complete = evaluation_record(dict(report, num_failed=0, overall=dict(report["overall"], num_failed=0),
                                      per_method={}), data="DFDC", split="test")
    folder = dynsnip_hub.save_pretrained(detector(), tmp_path / "m", evaluation=[partial, old, complete])
    card = ModelCard.load(folder / "README.md")
    assert "| FF++ c23 [test] (6 of 11 videos scored) |" in card.text  # 6 scored + 2 failed + 3 missing
    assert "| FF++ c23 [test]: DF (4 of 5 videos scored) |" in card.text
    assert "| Celeb-DF [test] |" in card.text and "| DFDC [test] |" in card.text
    assert "is not a result on the whole set" in card.text
    splits = {(r.dataset_name, r.dataset_split) for r in card.data.eval_results}
    assert splits == {("FF++ c23", "test (6 of 11 videos scored)"), ("Celeb-DF", "test"), ("DFDC", "test")}
    whole = dynsnip_hub.save_pretrained(detector(), tmp_path / "whole", evaluation=[old, complete])
    assert "not a result on the whole set" not in (whole / "README.md").read_text()
