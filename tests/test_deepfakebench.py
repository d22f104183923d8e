"""DIL inside DeepfakeBench, DeepfakeBench's preprocessed data in dynsnip, and back.

DeepfakeBench itself is not installed (and none of its code is copied): the registry and the
base class below are minimal stand-ins written from its documented interface (a registry with
``register_module(module_name=...)`` and ``DETECTOR[name]``; an abstract ``nn.Module`` with
``features``, ``classifier``, ``forward(data_dict, inference)``, ``build_backbone``,
``build_loss``, ``get_losses``, ``get_train_metrics``).
"""
from __future__ import annotations

import abc
import copy
import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from PIL import Image

from dynsnip.cli import main
from dynsnip.convert import SIBlock
from dynsnip.data.benchmarks import LayoutError
from dynsnip.data.benchmarks.deepfakebench import deepfakebench_manifest
from dynsnip.engine.metrics import accuracy, average_precision, equal_error_rate, roc_auc
from dynsnip.integrations.deepfakebench import CONFIG_PATH, DeepfakeBenchConfigError, register
from dynsnip.models.paper_configs import module_configuration


# ----------------------------------------------------------------------------- stand-ins
class StandInRegistry:
    def __init__(self):
        self.data = {}

    def register_module(self, module_name=None):
        def add(cls):
            self.data[module_name or cls.__name__] = cls
            return cls
        return add

    def __getitem__(self, key):
        return self.data[key]


class StandInDetector(torch.nn.Module, metaclass=abc.ABCMeta):
    def __init__(self, config=None, load_param=False):
        super().__init__()

    @abc.abstractmethod
    def features(self, data_dict): ...

    @abc.abstractmethod
    def classifier(self, features): ...

    @abc.abstractmethod
    def forward(self, data_dict, inference=False): ...

    @abc.abstractmethod
    def build_backbone(self, config): ...

    @abc.abstractmethod
    def build_loss(self, config): ...

    @abc.abstractmethod
    def get_losses(self, data_dict, pred_dict): ...

    @abc.abstractmethod
    def get_train_metrics(self, data_dict, pred_dict): ...


class OlderStandInDetector(StandInDetector):
    """Older DeepfakeBench trainers also require get_test_metrics()."""

    @abc.abstractmethod
    def get_test_metrics(self): ...


def dil_config(**dynsnip):
    """The shipped YAML, with a tiny model that builds without the network."""
    config = yaml.safe_load(CONFIG_PATH.read_text())
    config["dynsnip"].update(model="dil_resnet18", pretrained=False, **dynsnip)
    config["dynsnip"]["model_args"] = {"channels": [8, 16, 32, 64], "stem_width": 8}
    config["resolution"] = 32
    return config


@pytest.fixture(scope="module")
def registry():
    reg = StandInRegistry()
    register(reg, StandInDetector)
    return reg


def clip_batch(frames: int, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"image": torch.randn(4, frames, 3, 32, 32, generator=g), "label": torch.tensor([0, 1, 0, 1]),
            "mask": None, "landmark": None}


# ----------------------------------------------------------------------------- the detector
def test_shipped_yaml_builds_the_papers_module_in_the_registry(registry):
    torch.manual_seed(0)
    config = dil_config()
    detector = registry[config["model_name"]](config)
    assert isinstance(detector, StandInDetector)
    assert config["model_name"] == "dil" and config["dynsnip"]["config"] == "paper"
    assert module_configuration(detector.backbone) == "paper"
    assert detector.backbone.pretrained_loaded is False  # pretrained: false, no network (the Hub is unreachable here)
    assert (detector.backbone.snippet_len, detector.backbone.num_snippets) == (4, 4)  # clip_size 16 = U 4 x T 4
    default = registry["dil"](dil_config(config="default"))
    assert module_configuration(default.backbone) == "default"


def test_shipped_yaml_switches_off_every_augmentation_a_key_allows():
    """The paper trains with a horizontal flip only. DeepfakeBench's training transform applies, at
    p = 0.5 whatever the keys say, one of brightness/contrast, FancyPCA and hue-saturation, and a
    JPEG re-compression between quality_lower and quality_upper: the YAML must make the first a
    no-op (zero limits) and the JPEG step its mildest (quality 100), besides zeroing the
    probabilities of rotation and blur."""
    aug = yaml.safe_load(CONFIG_PATH.read_text())["data_aug"]
    assert aug["flip_prob"] == 0.5
    assert aug["rotate_prob"] == 0 and aug["blur_prob"] == 0 and aug["brightness_prob"] == 0
    assert [float(v) for v in aug["brightness_limit"]] == [0.0, 0.0]
    assert [float(v) for v in aug["contrast_limit"]] == [0.0, 0.0]
    assert (aug["quality_lower"], aug["quality_upper"]) == (100, 100)


def test_forward_loss_metrics_and_u_at_test_time(registry):
    torch.manual_seed(0)
    detector = registry["dil"](dil_config())
    seen_u = []
    block = next(m for m in detector.backbone.modules() if isinstance(m, SIBlock))
    block.register_forward_pre_hook(lambda module, args: seen_u.append(args[1]))

    detector.train()
    batch = clip_batch(16)  # clip_size 16: U = 4 snippets of T = 4
    pred = detector(batch)
    assert set(pred) == {"cls", "prob", "feat"}
    assert pred["cls"].shape == (4, 2) and pred["prob"].shape == (4,) and pred["feat"].shape == (4, 64)
    assert torch.allclose(pred["prob"], pred["cls"].softmax(1)[:, 1], atol=1e-6)
    losses = detector.get_losses(batch, pred)
    # the paper's binary cross-entropy on the fake logit = cross-entropy on the two-class logits
    z = pred["cls"][:, 1]
    assert torch.allclose(losses["overall"], F.binary_cross_entropy_with_logits(z, batch["label"].float()))
    assert torch.allclose(losses["overall"], F.cross_entropy(pred["cls"], batch["label"]), atol=1e-6)
    losses["overall"].backward()
    sim_grads = [p.grad for n, p in detector.named_parameters() if ".sim." in n]
    assert sim_grads and all(g is not None for g in sim_grads)
    metrics = detector.get_train_metrics(batch, pred)
    p, y = pred["prob"].detach(), batch["label"].float()
    assert metrics == pytest.approx({"acc": accuracy(p, y), "auc": roc_auc(p, y), "eer": equal_error_rate(p, y),
                                     "ap": average_precision(p, y)})
    one_class = {"image": batch["image"][:2], "label": torch.tensor([1, 1])}
    assert detector.get_train_metrics(one_class, detector(one_class))["auc"] is None  # skipped by their recorder

    detector.eval()
    with torch.no_grad():
        test_pred = detector(clip_batch(32, seed=1), inference=True)  # a test config with clip_size 32: U = 8
    assert test_pred["prob"].shape == (4,)
    assert seen_u == [4, 4, 8]  # the SIMs saw U snippets of one clip, U read from each batch
    three_classes = dict(clip_batch(32, seed=1), label=torch.tensor([0, 2, 1, 3]))
    with torch.no_grad(), pytest.raises(ValueError, match=r"labels must be 0 \(real\) or 1 \(fake\), got \[2, 3\]"):
        detector(three_classes, inference=True)  # as in training: never counted as fakes in the test metrics


def test_config_normalisation_is_mapped_to_the_backbones(registry):
    """DeepfakeBench's usual mean/std 0.5 input reaches the network as ImageNet-normalised pixels."""
    torch.manual_seed(0)
    config = dil_config()
    config["mean"], config["std"] = [0.5] * 3, [0.5] * 3
    detector = registry["dil"](config).eval()
    pixels = torch.rand(2, 8, 3, 32, 32)
    theirs = (pixels - 0.5) / 0.5
    imagenet = (pixels - torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    with torch.no_grad():
        got = detector.features({"image": theirs})
        want = detector.backbone.forward_features(imagenet.transpose(1, 2))
    assert torch.allclose(got, want, atol=1e-4)
    assert not any("input" in k for k in detector.state_dict())  # their checkpoints hold the network only


def test_older_trainers_get_test_metrics_and_strict_checkpoint_reload(tmp_path):
    reg = StandInRegistry()
    cls = register(reg, OlderStandInDetector)
    torch.manual_seed(0)
    detector = cls(dil_config()).eval()
    with torch.no_grad():
        for seed in range(2):
            detector(clip_batch(16, seed), inference=True)
    metrics = detector.get_test_metrics()
    assert len(metrics["pred"]) == 8 and metrics["label"].tolist() == [0, 1, 0, 1] * 2
    assert metrics["auc"] == pytest.approx(roc_auc(metrics["pred"], metrics["label"]))
    with pytest.raises(ValueError, match="no clips"):
        detector.get_test_metrics()  # forgotten after the call
    # DeepfakeBench's test script loads its saved state dict strictly into a freshly built detector
    fresh = cls(dil_config())
    fresh.load_state_dict(detector.state_dict(), strict=True)
    # ... and its network is a dynsnip detector: saved in the hub layout, loaded back by dynsnip
    import dynsnip
    from dynsnip.engine import build_model

    folder = dynsnip.save_pretrained(detector.backbone, Path(tmp_path) / "from_deepfakebench")
    batch = clip_batch(16)
    with torch.no_grad():
        reloaded = build_model(folder).eval()(batch["image"].transpose(1, 2))
        assert torch.allclose(reloaded[:, 0], detector(batch)["cls"][:, 1], atol=1e-5)
    assert module_configuration(build_model(folder)) == "paper"
    broken = copy.deepcopy(detector)
    with torch.no_grad():
        broken.backbone.fc.weight.fill_(float("nan"))
        with pytest.raises(ValueError, match="NaN"):
            broken(clip_batch(16), inference=True)  # no verdict from a NaN score


@pytest.mark.parametrize("change, expected", [
    (lambda c: c.update(video_mode=False), "video_mode: true"),
    (lambda c: c.update(clip_size=10), "not a multiple of dynsnip.snippet_len"),
    (lambda c: c.update(frame_num={"train": 8, "test": 32}), "frame_num.train 8 is below clip_size 16"),
    (lambda c: c.update(loss_func="focal"), "loss_func: cross_entropy"),
    (lambda c: c["dynsnip"].update(snippets=4), "unknown key(s) ['snippets']"),
    (lambda c: c["dynsnip"].update(config="paper-ish"), "'paper'"),
    (lambda c: c["dynsnip"].update(pretrained=None), "true (ImageNet weights), false"),
    (lambda c: c["dynsnip"].update(model="resnet50"), "dil_* architecture"),
    (lambda c: c["dynsnip"].update(model_args={"snippet_len": 8}), "model_args.snippet_len is set by the integration"),
    (lambda c: c["dynsnip"].update(model_args={"num_classes": 2}), "model_args.num_classes is set by the integration"),
    (lambda c: c["dynsnip"].update(model_args={"bogus": 1}), "model_args {'bogus': 1} do not build"),
    (lambda c: c.update(resolution="64"), "resolution must be the frames' side in pixels"),
])
def test_bad_configs_are_one_line_errors_naming_the_key(registry, change, expected):
    config = dil_config()
    change(config)
    with pytest.raises(DeepfakeBenchConfigError) as err:
        registry["dil"](config)
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_a_registry_or_base_of_another_shape_is_refused():
    with pytest.raises(TypeError, match="expected DeepfakeBench's DETECTOR registry") as err:
        register({"dil": None}, StandInDetector)
    assert "\n" not in str(err.value)
    with pytest.raises(TypeError, match="expected DeepfakeBench's AbstractDetector class"):
        register(StandInRegistry(), object)
    reg = StandInRegistry()
    reg.register_module("dil")(type("Other", (StandInDetector,), {}))
    with pytest.raises(ValueError, match="already Other"):
        register(reg, StandInDetector)
    register(reg, StandInDetector, name="dil_video")
    assert reg["dil_video"].__name__ == "DILDetector"


def test_batch_labels_must_be_binary(registry):
    detector = registry["dil"](dil_config())
    batch = clip_batch(16)
    batch["label"] = torch.tensor([0, 1, 2, 1])
    with pytest.raises(ValueError, match="label_dict"):
        detector.get_losses(batch, detector(batch))


# ----------------------------------------------------------------------------- reading their data
def write_frames(folder: Path, numbers, size: int = 16, seed: int = 0) -> list[Path]:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in numbers:
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(folder / f"{n:03d}.png")
        paths.append(folder / f"{n:03d}.png")
    return paths


def as_written_on_windows(paths, rgb: Path) -> list[str]:
    """Frame paths as DeepfakeBench's preprocessing writes them on another machine."""
    return [".\\datasets\\rgb\\" + str(p.relative_to(rgb)).replace("/", "\\") for p in paths]


@pytest.fixture
def ffdf_json(tmp_path):
    """An FF-DF.json with levels: two consecutive folders, one spread like DeepfakeBench's default, one missing."""
    rgb = tmp_path / "rgb"
    real = rgb / "FaceForensics++/original_sequences/youtube/c23/frames"
    fake = rgb / "FaceForensics++/manipulated_sequences/Deepfakes/c23/frames"
    videos = {
        ("FF-real", "train", "000"): write_frames(real / "000", range(12)),
        ("FF-DF", "train", "000_003"): write_frames(fake / "000_003", range(12), seed=1),
        ("FF-real", "test", "003"): write_frames(real / "003", range(0, 310, 10)),  # 32 frames spread over 310
    }
    data = {"FF-DF": {"FF-real": {"train": {"c23": {}, "c40": {}}, "val": {"c23": {}}, "test": {"c23": {}}},
                      "FF-DF": {"train": {"c23": {}}, "val": {"c23": {}}, "test": {"c23": {}}}}}
    for (label, split, name), paths in videos.items():
        data["FF-DF"][label][split]["c23"][name] = {"label": label, "frames": as_written_on_windows(paths, rgb)}
    data["FF-DF"]["FF-DF"]["test"]["c23"]["003_000"] = {"label": "FF-DF", "frames": [
        ".\\datasets\\rgb\\FaceForensics++\\manipulated_sequences\\Deepfakes\\c23\\frames\\003_000\\000.png"]}
    path = tmp_path / "FF-DF.json"
    path.write_text(json.dumps(data))
    return path, rgb


def test_manifest_of_a_deepfakebench_json(ffdf_json, tmp_path, capsys):
    json_path, rgb = ffdf_json
    out = tmp_path / "ffdf.csv"
    assert main(["manifest", "deepfakebench", str(json_path), "--frames-root", str(rgb), "--out", str(out)]) == 1
    printed = capsys.readouterr().out
    # the spread folder is refused with its gap named and how to get consecutive frames; the missing one named
    assert "003: frame numbers are not consecutive: after frame 0 comes 10" in printed
    assert "dynsnip extract-faces" in printed and "003_000" in printed
    with out.open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["path"], r["label"], r["split"], r["method"], r["dataset"], r["compression"], r["label_name"])
            for r in rows] == [
        ("rgb/FaceForensics++/original_sequences/youtube/c23/frames/000", "0", "train", "", "ffpp:c23", "c23", "FF-real"),
        ("rgb/FaceForensics++/manipulated_sequences/Deepfakes/c23/frames/000_003", "1", "train", "Deepfakes", "ffpp:c23",
         "c23", "FF-DF"),
    ]
    from dynsnip.data.manifest import read_manifest

    assert {e.dataset for e in read_manifest(out)} == {"ffpp:c23"}  # the provenance dynsnip benchmark checks
    # training reads those folders
    from dynsnip.data import FaceFramesDataset

    pixels, label = FaceFramesDataset(out, num_snippets=2, snippet_len=4, size=(16, 16), train=True)[1]
    assert pixels.shape == (3, 8, 16, 16) and label.item() == 1.0


def test_only_spread_frames_is_an_error_and_nothing_is_written(tmp_path, capsys):
    rgb = tmp_path / "rgb"
    frames = write_frames(rgb / "Celeb-real/frames/id0_0000", range(0, 320, 10))
    data = {"Celeb-DF-v2": {"CelebDFv2_real": {"train": {}, "val": {}, "test": {
        "id0_0000": {"label": "CelebDFv2_real", "frames": [str(p) for p in frames]}}}}}
    path = tmp_path / "Celeb-DF-v2.json"
    path.write_text(json.dumps(data))
    out = tmp_path / "celeb.csv"
    assert main(["manifest", "deepfakebench", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "after frame 0 comes 10" in err and "dynsnip extract-faces" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.parametrize("data, expected", [
    ([1, 2], "at the top found list"),
    ({"FF": {"FF-real": {"training": {}}}}, "at FF/FF-real found keys ['training']"),
    ({"FF": {"FF-real": {"train": {"000": {"label": "FF-real"}}}}}, "at FF/FF-real/train/000 found keys ['label']"),
])
def test_a_json_of_another_shape_is_a_one_line_error(tmp_path, data, expected):
    path = tmp_path / "x.json"
    path.write_text(json.dumps(data))
    with pytest.raises(LayoutError) as err:
        deepfakebench_manifest(path)
    assert expected in str(err.value) and "{dataset: {label_name:" in str(err.value) and "\n" not in str(err.value)


def test_label_names_outside_the_mapping_and_missing_frames(tmp_path, capsys):
    frames = write_frames(tmp_path / "frames/v0", range(8))
    data = {"Mine": {"MyFakes": {"train": {"v0": {"label": "MyFakes", "frames": [str(p) for p in frames]}}}}}
    path = tmp_path / "Mine.json"
    path.write_text(json.dumps(data))
    with pytest.raises(LayoutError, match="'MyFakes' .* is not in the label mapping; .* --label-dict"):
        deepfakebench_manifest(path)
    label_dict = tmp_path / "train_config.yaml"
    label_dict.write_text("mode: train\nlabel_dict:\n  MyFakes: 1\n  MyReals: 0\n")
    (row,) = deepfakebench_manifest(path, label_dict={"MyFakes": 1}).rows
    assert (row.label, row.method) == (1, "MyFakes")
    assert main(["manifest", "deepfakebench", str(path), "--label-dict", str(label_dict), "--out",
                 str(tmp_path / "a.csv")]) == 0
    assert main(["manifest", "deepfakebench", str(path), "--label", "MyFakes=2", "--out", str(tmp_path / "b.csv")]) == 2
    label_dict.write_text("label_dict:\n  MyFakes: 3\n")
    with pytest.raises(LayoutError, match="binary detector"):
        from dynsnip.data.benchmarks.deepfakebench import read_label_dict
        read_label_dict(label_dict)
    # a frame the JSON lists that is not on disk: the folder is refused, naming it
    data["Mine"]["MyFakes"]["train"]["v0"]["frames"].append(str(tmp_path / "frames/v0/008.png"))
    path.write_text(json.dumps(data))
    with pytest.raises(LayoutError, match="008.png"):
        deepfakebench_manifest(path, label_dict={"MyFakes": 1})
    # no folder at all under the frames root: one line naming the first path and what --frames-root must be
    with pytest.raises(LayoutError, match="none of the 1 frame folders it lists exists under --frames-root"):
        deepfakebench_manifest(path, frames_root=tmp_path / "frames/v0", label_dict={"MyFakes": 1})


def test_compression_levels(ffdf_json):
    json_path, rgb = ffdf_json
    with pytest.raises(LayoutError, match="has compression level\\(s\\) c23, c40, not raw"):
        deepfakebench_manifest(json_path, rgb, compression="raw")
    with pytest.raises(LayoutError, match="lists no videos at compression c40"):
        deepfakebench_manifest(json_path, rgb, compression="c40")
    assert set(deepfakebench_manifest(json_path, rgb, compression="c23").compression) == {"c23"}
    plain = json.loads(json_path.read_text())
    for splits in plain["FF-DF"].values():
        for split in splits:
            splits[split] = splits[split]["c23"]
    json_path.write_text(json.dumps(plain))
    with pytest.raises(LayoutError, match="has no compression levels"):
        deepfakebench_manifest(json_path, rgb, compression="c23")
    assert set(deepfakebench_manifest(json_path, rgb).compression) == {""}


# ----------------------------------------------------------------------------- exporting ours for theirs
@pytest.fixture(scope="module")
def extracted(tmp_path_factory):
    """extract-faces output of a 10-frame clip (with a stand-in detector), three times, with faces.csv."""
    from video_fixtures import encode

    from dynsnip.data.faces.extraction import extract_face_frames
    from dynsnip.data.manifest import ManifestEntry, write_manifest

    root = tmp_path_factory.mktemp("extracted")
    rng = np.random.default_rng(0)
    video = encode(root / "clip.mp4", [rng.integers(0, 255, (64, 80, 3), dtype=np.uint8) for _ in range(10)])
    boxes = iter(np.linspace(10, 20, 3))

    def detector(frame):  # a face that moves: blocks get different boxes
        x = next(boxes, 20.0)
        return np.array([[x, 12, x + 24, 36, 0.9]])

    out = root / "faces"
    rows = [("real/a", 0, "train", None), ("fake/a", 1, "train", "Deepfakes"), ("real/b", 0, "test", None)]
    for name, *_ in rows:
        boxes = iter(np.linspace(10, 20, 3))
        # every frame is new noise, so none "shows" the stand-in face of the frame looked at: no coverage check
        extract_face_frames(video, out / name, face_detector=detector, min_face_coverage=0)
    write_manifest([ManifestEntry(out / name, label, split, method) for name, label, split, method in rows]
                   + [ManifestEntry(out / "real/gone", 0, "test")], out / "faces.csv")
    return out


def test_export_writes_the_crops_dil_sees(extracted, tmp_path, capsys):
    from dynsnip.data.datasets import frame_sequence
    from dynsnip.data.faces.face_folder import FaceFolder

    out_json, crops = tmp_path / "json" / "dynsnip_ff.json", tmp_path / "crops"
    argv = ["export", "deepfakebench", str(extracted / "faces.csv"), "--out", str(out_json), "--frames-out",
            str(crops), "--size", "24", "--labels", "ffpp", "--quiet"]
    assert main(argv) == 1  # real/gone is reported, the others exported
    captured = capsys.readouterr()
    assert "real/gone" in captured.err and "FF-DF: 1" in captured.out and "FF-real: 0" in captured.out
    data = json.loads(out_json.read_text())["dynsnip_ff"]
    assert set(data) == {"FF-real", "FF-DF"} and set(data["FF-real"]) == {"train", "val", "test"}
    entry = data["FF-DF"]["train"]["fake/a"]
    assert entry["label"] == "FF-DF" and len(entry["frames"]) == 10
    # each frame is the crop DIL's dataset cuts for the aligned snippet holding it (the last block: frames 6-9)
    folder = FaceFolder(extracted / "fake/a", frame_sequence(extracted / "fake/a").paths)
    for block, written in (([0, 1, 2, 3], [0, 1, 2, 3]), ([4, 5, 6, 7], [4, 5, 6, 7]), ([6, 7, 8, 9], [8, 9])):
        want, _ = folder.clip_frames(np.array([block]), (24, 24), "bilinear")
        for i in written:
            got = np.asarray(Image.open(entry["frames"][i]).convert("RGB"))
            assert np.array_equal(got, want[block.index(i)]), i
    assert not np.array_equal(folder.snippet_boxes(np.array([[0, 1, 2, 3]])).boxes,
                              folder.snippet_boxes(np.array([[4, 5, 6, 7]])).boxes)  # the face moved between blocks

    # the export reads back as consecutive frame folders, labels through DeepfakeBench's names
    manifest = deepfakebench_manifest(out_json)
    assert sorted((r.path.relative_to(crops).as_posix(), r.label, r.split) for r in manifest.rows) == [
        ("fake/a", 1, "train"), ("real/a", 0, "train"), ("real/b", 0, "test")]
    assert not manifest.refused

    # with the default --labels dataset the names are <NAME>_real / <NAME>_fake, read back without --label flags
    plain = tmp_path / "json" / "plain.json"
    assert main(["export", "deepfakebench", str(extracted / "faces.csv"), "--out", str(plain), "--frames-out",
                 str(crops), "--size", "24", "--quiet"]) == 1  # default --labels dataset
    capsys.readouterr()
    assert main(["manifest", "deepfakebench", str(plain), "--out", str(tmp_path / "plain.csv")]) == 0
    read = deepfakebench_manifest(plain)
    assert sorted((r.path.relative_to(crops).as_posix(), r.label) for r in read.rows) == [
        ("fake/a", 1), ("real/a", 0), ("real/b", 0)]
    assert sorted(set(read.label_names)) == ["plain_fake", "plain_real"]

    # never replaced without --overwrite; a rerun reuses complete video folders
    assert main(argv) == 2 and "--overwrite" in capsys.readouterr().err
    stamp = Path(entry["frames"][0]).stat().st_mtime_ns
    assert main([*argv, "--overwrite"]) == 1
    assert Path(entry["frames"][0]).stat().st_mtime_ns == stamp

    # another --size into the same --frames-out: the crops of the first export (which its JSON lists) are not
    # replaced, and not reused either; with --overwrite they are made again at the new size
    other = ["export", "deepfakebench", str(extracted / "faces.csv"), "--out", str(tmp_path / "json" / "small.json"),
             "--frames-out", str(crops), "--size", "16", "--labels", "ffpp", "--quiet"]
    assert main(other) == 2  # no video exported
    assert "holds the crops of another export (24 px, bilinear), not 16 px" in capsys.readouterr().err
    assert Image.open(entry["frames"][0]).size == (24, 24)
    assert main([*other, "--overwrite"]) == 1
    assert Image.open(entry["frames"][0]).size == (16, 16)


@pytest.fixture(scope="module")
def two_faced(tmp_path_factory):
    """extract-faces output of a 10-frame clip with two moving faces (stand-in detector): track 0 the
    larger, track 1 the smaller; returns the folder (its faces.json's samples are rewritten by the tests)."""
    from video_fixtures import encode

    from dynsnip.data.faces.extraction import extract_face_frames

    root = tmp_path_factory.mktemp("two_faced")
    rng = np.random.default_rng(1)
    video = encode(root / "clip.mp4", [rng.integers(0, 255, (64, 96, 3), dtype=np.uint8) for _ in range(10)])
    steps = iter(range(100))

    def detector(frame):  # both faces move a little from one looked-at frame to the next
        x = 2 * next(steps, 0)
        return np.array([[40 + x, 10, 80 + x, 50, 0.9], [4 + x, 30, 20 + x, 46, 0.8]])

    folder = root / "faces" / "fake" / "a"
    extract_face_frames(video, folder, face_detector=detector, min_face_coverage=0)
    assert [t["status"] for t in json.loads((folder / "faces.json").read_text())["tracks"]] == ["kept", "kept"]
    return folder


def _with_samples(folder: Path, tracks: list[int]) -> None:
    meta = json.loads((folder / "faces.json").read_text())
    meta["samples"] = {"tracks": tracks, "how": "set by the test"}
    (folder / "faces.json").write_text(json.dumps(meta))


def test_export_writes_the_sample_face_tracks_not_the_largest_face(two_faced, tmp_path):
    """A two-person fake whose smaller face (track 1) is the manipulated one: the export writes that
    track's crops (the larger, untouched face would go out labelled fake); a folder with two sample
    tracks gives one video per track, as training reads it."""
    from dynsnip.data.benchmarks.deepfakebench_export import aligned_blocks, export_deepfakebench
    from dynsnip.data.datasets import frame_sequence
    from dynsnip.data.faces.face_folder import FaceFolder
    from dynsnip.data.manifest import ManifestEntry, write_manifest

    manifest = two_faced.parent.parent / "faces.csv"
    write_manifest([ManifestEntry(two_faced, 1, "test")], manifest)
    folder = FaceFolder(two_faced, frame_sequence(two_faced).paths)
    blocks = np.array(aligned_blocks(10, 4))

    def crops(track):
        return [folder.cut(block[None], folder.snippet_boxes(block[None], track=track), (24, 24), "bilinear")
                for block in blocks]

    def exported(entry):
        return [np.asarray(Image.open(path).convert("RGB")) for path in entry["frames"]]

    _with_samples(two_faced, [1])
    export_deepfakebench(manifest, tmp_path / "one.json", tmp_path / "crops1", size=24)
    (entry,) = json.loads((tmp_path / "one.json").read_text())["one"]["one_fake"]["test"].values()
    got = exported(entry)
    small, large = crops(1), crops(0)
    assert all(np.array_equal(got[i], small[0][i]) for i in range(4))
    assert not np.array_equal(got[0], large[0][0])

    _with_samples(two_faced, [0, 1])
    export_deepfakebench(manifest, tmp_path / "two.json", tmp_path / "crops2", size=24)
    videos = json.loads((tmp_path / "two.json").read_text())["two"]["two_fake"]["test"]
    assert sorted(videos) == ["fake/a_track0", "fake/a_track1"]
    for track in (0, 1):
        assert np.array_equal(exported(videos[f"fake/a_track{track}"])[0], crops(track)[0][0])


def test_export_cuts_again_when_the_folder_was_extracted_again(extracted, tmp_path):
    """Crops of an earlier export are reused only while the folder is the one they were cut from: after
    the folder is extracted again with other settings (here --margin), the export cuts them again."""
    from dynsnip.data.benchmarks.deepfakebench_export import export_deepfakebench
    from dynsnip.data.datasets import frame_sequence
    from dynsnip.data.faces.extraction import extract_face_frames
    from dynsnip.data.faces.face_folder import FaceFolder
    from dynsnip.data.manifest import ManifestEntry, write_manifest

    folder = tmp_path / "faces" / "a"
    shutil.copytree(extracted / "real" / "a", folder)
    write_manifest([ManifestEntry(folder, 0, "test")], tmp_path / "faces" / "faces.csv")

    def export(name):
        export_deepfakebench(tmp_path / "faces" / "faces.csv", tmp_path / f"{name}.json", tmp_path / "crops", size=24)
        (entry,) = json.loads((tmp_path / f"{name}.json").read_text())[name][f"{name}_real"]["test"].values()
        return np.asarray(Image.open(entry["frames"][0]).convert("RGB"))

    def wanted():
        faces = FaceFolder(folder, frame_sequence(folder).paths)
        return faces.clip_frames(np.array([[0, 1, 2, 3]]), (24, 24), "bilinear")[0][0]

    first = export("first")
    assert np.array_equal(first, wanted())
    extract_face_frames(extracted.parent / "clip.mp4", folder, face_detector=lambda f: np.array([[10, 12, 34, 36, 0.9]]),
                        min_face_coverage=0, margin=2.0, replace=True)
    again = export("again")
    assert np.array_equal(again, wanted()) and not np.array_equal(again, first)


def test_export_never_replaces_its_source_folders_or_a_folder_it_did_not_write(extracted, tmp_path, capsys):
    """--frames-out the extract-faces folder itself: the frame folders are never deleted (even with
    --overwrite); a same-named folder without the exporter's record is refused, and replaced only with
    --overwrite; --frames-out inside a frame folder is refused up front."""
    from dynsnip.data.manifest import ManifestEntry, write_manifest

    faces = tmp_path / "faces"
    for name in ("a", "b"):
        shutil.copytree(extracted / "real" / name, faces / name)
    write_manifest([ManifestEntry(faces / "a", 0, "train"), ManifestEntry(faces / "b", 0, "test")], faces / "faces.csv")
    before = {p: p.read_bytes() for p in sorted(faces.rglob("*")) if p.is_file()}
    argv = ["export", "deepfakebench", str(faces / "faces.csv"), "--out", str(tmp_path / "x.json"), "--size", "24",
            "--quiet"]
    for extra in ([], ["--overwrite"]):
        assert main([*argv, "--frames-out", str(faces), *extra]) == 2
        err = capsys.readouterr().err
        assert "is, holds or lies inside the frame folder" in err and str(faces / "a") in err
        assert {p: p.read_bytes() for p in sorted(faces.rglob("*")) if p.is_file()} == before
    assert main([*argv, "--frames-out", str(faces / "a" / "crops")]) == 2
    assert "is inside) the frame folder" in capsys.readouterr().err
    assert not (faces / "a" / "crops").exists()

    crops = tmp_path / "crops"
    (crops / "a").mkdir(parents=True)
    (crops / "a" / "mine.txt").write_text("a user's file")
    assert main([*argv, "--frames-out", str(crops)]) == 1  # b exported, a refused
    err = capsys.readouterr().err
    assert f"{crops / 'a'} exists and holds no .dynsnip-export.json" in err and "--overwrite" in err
    assert (crops / "a" / "mine.txt").read_text() == "a user's file"
    assert main([*argv, "--frames-out", str(crops), "--overwrite"]) == 0
    assert not (crops / "a" / "mine.txt").exists() and (crops / "a" / "000000.png").is_file()


def test_export_leaves_out_a_folder_whose_video_jumps_in_time(extracted, tmp_path, capsys):
    """A video cut or paused (a jump in its timestamps: faces.json's time_gaps) gives consecutive frame
    files that are not consecutive in time; the export writes a video as consecutive frames, so the
    folder is reported (frame_gap) and left out, the others exported."""
    from video_fixtures import encode

    from dynsnip.data.faces.extraction import extract_face_frames
    from dynsnip.data.manifest import ManifestEntry, write_manifest

    rng = np.random.default_rng(3)
    video = encode(tmp_path / "cut.mp4", [rng.integers(0, 255, (64, 80, 3), dtype=np.uint8) for _ in range(10)],
                   pts=[0, 1, 2, 3, 4, 5, 40, 41, 42, 43])
    faces = tmp_path / "faces"
    extract_face_frames(video, faces / "cut", face_detector=lambda f: np.array([[10, 12, 34, 36, 0.9]]),
                        min_face_coverage=0)
    assert json.loads((faces / "cut" / "faces.json").read_text())["time_gaps"] == [6]
    shutil.copytree(extracted / "real" / "a", faces / "a")
    write_manifest([ManifestEntry(faces / "cut", 0, "test"), ManifestEntry(faces / "a", 0, "test")],
                   faces / "faces.csv")
    out_json = tmp_path / "x.json"
    assert main(["export", "deepfakebench", str(faces / "faces.csv"), "--out", str(out_json), "--frames-out",
                 str(tmp_path / "crops"), "--size", "24", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "cut or paused between frames 5 and 6" in err and str(faces / "cut") in err
    assert list(json.loads(out_json.read_text())["x"]["x_real"]["test"]) == ["a"]
    assert not (tmp_path / "crops" / "cut").exists()


def test_export_does_not_replace_crops_cut_from_another_folder(extracted, tmp_path, capsys):
    """Two extract-faces outputs with a video of the same name, exported into one --frames-out: the
    second export does not replace the first one's crops (its JSON lists them) without --overwrite."""
    from dynsnip.data.manifest import ManifestEntry, write_manifest

    crops = tmp_path / "crops"
    for run, source in (("one", "a"), ("two", "b")):
        shutil.copytree(extracted / "real" / source, tmp_path / run / "v")
        write_manifest([ManifestEntry(tmp_path / run / "v", 0, "test")], tmp_path / run / "faces.csv")
    argv = ["export", "deepfakebench", "--frames-out", str(crops), "--size", "24", "--quiet"]
    assert main([*argv, str(tmp_path / "one" / "faces.csv"), "--out", str(tmp_path / "one.json")]) == 0
    first = {p.name: p.read_bytes() for p in (crops / "v").iterdir()}
    assert json.loads((crops / "v" / ".dynsnip-export.json").read_text())["source"] == str(tmp_path / "one" / "v")
    two = [*argv, str(tmp_path / "two" / "faces.csv"), "--out", str(tmp_path / "two.json")]
    assert main(two) == 2
    assert f"holds the crops of another export (cut from {tmp_path / 'one' / 'v'}" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in (crops / "v").iterdir()} == first
    assert main([*two, "--overwrite"]) == 0
    record = json.loads((crops / "v" / ".dynsnip-export.json").read_text())
    assert record["source"] == str(tmp_path / "two" / "v")


def test_export_options_are_checked(extracted, tmp_path, capsys):
    base = ["export", "deepfakebench", str(extracted), "--frames-out", str(tmp_path / "crops")]
    assert main([*base, "--out", str(tmp_path / "FaceForensics++.json")]) == 2
    assert "compression" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "x.json"), "--name", "y"]) == 2
    assert "y.json" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "FF-DF.json"), "--compression", "c23", "--quiet"]) == 1
    data = json.loads((tmp_path / "FF-DF.json").read_text())["FF-DF"]
    assert list(data["FF-DF_fake"]["train"]) == ["c23"] and "fake/a" in data["FF-DF_fake"]["train"]["c23"]
    assert main(["export"]) == 2



def test_export_interpolation_is_checked_before_any_folder_is_touched(extracted, tmp_path, capsys):
    from dynsnip.data.benchmarks.deepfakebench_export import export_deepfakebench
    from dynsnip.data.faces.crop import _PIL_FILTERS

    crops = tmp_path / "crops"
    with pytest.raises(SystemExit, match="2"):  # argparse's usage error
        main(["export", "deepfakebench", str(extracted), "--out", str(tmp_path / "x.json"), "--frames-out",
              str(crops), "--interpolation", "bilinaer"])
    assert "invalid choice: 'bilinaer'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown interpolation 'bilinaer'"):
        export_deepfakebench(extracted / "faces.csv", tmp_path / "x.json", crops, interpolation="bilinaer")
    assert not crops.exists() and not (tmp_path / "x.json").exists()
    from dynsnip.cli.export import INTERPOLATIONS  # the choices are the names the resize accepts

    assert sorted(INTERPOLATIONS) == sorted(_PIL_FILTERS)

# ----------------------------------------------------------------------------- --config paper|default
def test_module_configuration_names_and_merges():
    import dynsnip
    from dynsnip.models.paper_configs import module_config_args

    assert module_configuration(module_config_args("default")) == "default"
    assert module_configuration(module_config_args("paper")) == "paper"
    assert module_configuration(dynsnip.paper_config("table5/bp")) == "custom"
    merged = module_config_args("paper", {"intra_args": {"coord_attention": False}, "drop_rate": 0.1})
    assert merged == {"intra_args": {"motion_fraction": 0.0, "diff_init": "random", "coord_attention": False},
                      "inter_args": {"conv_u_init": "random"}, "drop_rate": 0.1}
    # the paper's "both Intra-SIM and Inter-SIM are randomly initialized": Conv_U too
    assert module_config_args("paper")["inter_args"] == {"conv_u_init": "random"}
    # detectors saved before the paper's rows set conv_u_init are still the paper's module
    assert module_configuration({"intra_args": {"motion_fraction": 0.0, "diff_init": "random"}}) == "paper"
    assert module_configuration({"inter_args": {"conv_u_init": "random"}}) == "custom"  # default Intra-SIM
    assert module_configuration({**module_config_args("paper"), "inter_args": {"edge": "frame"}}) == "custom"
    with pytest.raises(ValueError, match="paper, default|default, paper"):
        module_config_args("ours")


TINY_ARGS = ["--model", "dil_resnet18", "--no-pretrained", "--model-arg", "channels=[8,16,32,64]",
             "--model-arg", "stem_width=8"]


@pytest.fixture(scope="module")
def frames_manifest(tmp_path_factory):
    """Real / fake frame folders with train, val and test rows (FF++-like methods)."""
    root = tmp_path_factory.mktemp("frames")
    rows = []
    for split, n in (("train", 4), ("val", 4), ("test", 4)):
        for i in range(n):
            name = f"{split}_{i}"
            write_frames(root / name, range(8), seed=hash(name) % 1000)
            rows.append({"path": name, "label": i % 2, "split": split,
                         "method": "Deepfakes" if i % 2 else ""})
    path = root / "manifest.csv"
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["path", "label", "split", "method"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_train_config_paper_builds_names_and_keeps_the_papers_module(frames_manifest, tmp_path, capsys):
    out = tmp_path / "run"
    common = ["train", "--manifest", str(frames_manifest), "--out", str(out), *TINY_ARGS, "--batch-size", "2",
              "--img-size", "16", "--num-snippets", "1", "--test-num-snippets", "1", "--workers", "0",
              "--no-progress", "--epochs", "1"]
    assert main([*common, "--config", "paper"]) == 0
    assert "module configuration 'paper'" in capsys.readouterr().out
    assert json.loads((out / "recipe.json").read_text())["module_config"] == "paper"
    config = json.loads((out / "model" / "config.json").read_text())
    assert config["training"]["recipe"]["module_config"] == "paper"
    intra = config["model_args"]["intra_args"]
    assert (intra["motion_fraction"], intra["diff_init"]) == (0.0, "random")
    assert "the paper's module as written" in (out / "model" / "README.md").read_text()
    # resuming the run as the other module is refused, naming the setting
    assert main([*common, "--epochs", "2", "--config", "default"]) == 2
    assert "module_config" in capsys.readouterr().err
    # a saved paper detector is not fine-tuned as dynsnip's default module
    assert main(["train", "--manifest", str(frames_manifest), "--out", str(tmp_path / "ft"), "--model",
                 str(out / "model"), "--config", "default", "--workers", "0", "--no-progress", "--epochs", "1"]) == 2
    assert "is a detector of the 'paper' module configuration" in capsys.readouterr().err


def test_benchmark_table_names_the_module_it_trained(frames_manifest, tmp_path, capsys):
    from dynsnip.engine import Recipe, build_model, save_model

    torch.manual_seed(0)
    paper = save_model(build_model("dil_resnet18", pretrained=False, module_config="paper",
                                   channels=[8, 16, 32, 64], stem_width=8),
                       tmp_path / "paper_model", recipe=Recipe(model="dil_resnet18", img_size=16))
    out = tmp_path / "bench"
    common = ["benchmark", "ffpp-hq", "--data", str(frames_manifest), "--data-is", "ffpp:c23", "--img-size", "16",
              "--workers", "0",
              "--no-progress", "--batch-size", "2", "--num-snippets", "1", "--test-num-snippets", "1",
              "--no-frame-level"]
    # exit code 1: a handful of the FF++ test split's 700 videos, reported as missing test videos
    assert main([*common, "--model", str(paper), "--out", str(out), "--train", "--epochs", "1", "--config", "paper"]) == 1
    printed = capsys.readouterr().out
    assert "lacks" in printed and "of the videos of the complete FaceForensics++ HQ (c23) test set" in printed
    assert "(paper module)" in printed and "the configuration that reproduces the paper" in printed
    result = json.loads((out / "benchmark.json").read_text())
    assert result["module_config"] == "paper"
    assert "Module: module configuration 'paper'" in (out / "benchmark.md").read_text()
    assert json.loads((out / "run" / "recipe.json").read_text())["module_config"] == "paper"
    # without --train, --config names what the evaluated detector must be (and training options are refused)
    assert main([*common, "--model", str(paper), "--out", str(tmp_path / "b2"), "--config", "default"]) == 2
    assert "--num-snippets set(s) the training of --train; without --train" in capsys.readouterr().err
    evaluate_only = [a for i, a in enumerate(common) if "--num-snippets" not in (a, common[i - 1])]
    assert main([*evaluate_only, "--model", str(paper), "--out", str(tmp_path / "b2"), "--config", "default"]) == 2
    assert "--config default" in capsys.readouterr().err


def test_average_precision_and_equal_error_rate():
    # scores 0.1 (real), 0.35 (fake), 0.4 (real), 0.8 (fake): precision 1 at recall 1/2, 2/3 at recall 1
    assert average_precision([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert average_precision([0.5, 0.5, 0.5], [0, 1, 1]) == pytest.approx(2 / 3)  # one tie, one step
    assert equal_error_rate([0.1, 0.9], [0, 1]) == 0.0
    assert equal_error_rate([0.9, 0.1], [0, 1]) == 1.0
    assert equal_error_rate([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.5)
    assert np.isnan(equal_error_rate([0.2, 0.3], [1, 1])) and np.isnan(average_precision([0.2], [0]))


def test_a_deepfakebench_trained_dil_is_saved_with_its_resolution(registry, tmp_path):
    """The backbone saved as docs/deepfakebench.md shows records the config's resolution (32 px here), so that
    `dynsnip predict` crops faces to the size it was trained at; it recorded the ImageNet tag's 224 px."""
    import json

    import dynsnip

    detector = registry["dil"](dil_config())
    folder = dynsnip.save_pretrained(detector.backbone, tmp_path / "dil-from-deepfakebench")
    assert json.loads((folder / "config.json").read_text())["pretrained_cfg"]["input_size"] == [3, 32, 32]
