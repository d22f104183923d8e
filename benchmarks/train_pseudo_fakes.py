"""Train the paper-size detector from real videos only, with pseudo-fakes (GPU; CPU for a tiny check).

    python benchmarks/train_pseudo_fakes.py --faces FACES --out OUT [--val NAME ...] [--weights resnet50.safetensors]

``FACES`` is a folder of face-crop folders, one per **real** video (what ``dynsnip
extract-faces VIDEOS --out FACES`` writes; no PyAV or dlib is needed here), or a manifest
(``path,label[,split]``; fakes in it are used as well, rows with split ``val`` validate).
The recipe is the paper's (:class:`dynsnip.engine.Recipe`: ``dil_resnet50.tv_in1k``, 224 px,
U=4 x T=4, Adam 1e-4, batch 10, BCE, horizontal flip, lr / 10 on a validation plateau,
U=8 for validation) with ``pseudo_fakes`` on: every real clip of a batch also gives its
pseudo-fake (:mod:`dynsnip.engine.pseudo_fakes`). On a GPU: mixed precision
(``--amp-dtype``) and channels_last weights and clips.

Validation: the held-out videos (``--val`` folder names, or the manifest's ``val`` rows)
and their pseudo-fakes, fixed by the seed (:class:`~dynsnip.engine.pseudo_fakes.PseudoFakePairs`).

Start: ``--init imagenet`` fetches timm's ``resnet50.tv_in1k`` (needs the Hub),
``--weights FILE`` loads a local timm/torchvision ResNet-50 ``.safetensors`` (the SIMs are
initialised as in the paper), ``--init random`` starts from random init (no network).

Time: ``--time-limit`` seconds of training; the run stops after the last epoch that fits
(estimated from the slowest epoch so far) and the model of its best epoch is in
``OUT/run/model`` (Hugging Face hub layout, card and ``config.json`` with the recipe and the
validation result). ``OUT/summary.json`` has the timings.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch


def real_entries(faces: Path, val_names: list[str]):
    """``(train entries, val entries)`` of a folder of frame folders or of a manifest."""
    from dynsnip.data.manifest import ManifestEntry, read_manifest

    if faces.is_file():
        entries = read_manifest(faces)
        return [e for e in entries if e.split not in ("val", "test")], [e for e in entries if e.split == "val"]
    folders = sorted(p for p in faces.iterdir() if p.is_dir())
    if not folders:
        raise SystemExit(f"{faces}: no face-crop folders in it; expected the output of `dynsnip extract-faces`")
    unknown = set(val_names) - {p.name for p in folders}
    if unknown:
        raise SystemExit(f"--val {sorted(unknown)}: no such folders in {faces}; have {[p.name for p in folders]}")
    train = [ManifestEntry(p, 0) for p in folders if p.name not in val_names]
    val = [ManifestEntry(p, 0) for p in folders if p.name in val_names]
    return train, val


def build(args: argparse.Namespace):
    from dynsnip.cli.train import parse_model_args
    from dynsnip.engine import Recipe, build_model

    extra = parse_model_args(args.model_arg)
    if args.weights:
        model = build_model(args.model.split(".")[0], pretrained=False, checkpoint=args.weights, **extra)
        name, pretrained = args.model, True  # the card: started from these (local) ImageNet weights
    else:
        pretrained = args.init == "imagenet"
        name = args.model if pretrained else args.model.split(".")[0]
        model = build_model(name, pretrained=pretrained, **extra)
    recipe = Recipe(
        model=name, pretrained=pretrained, epochs=args.epochs, img_size=args.img_size, batch_size=args.batch_size,
        num_snippets=args.num_snippets, test_num_snippets=args.test_num_snippets, num_workers=args.workers,
        amp_dtype=args.amp_dtype, seed=args.seed, pseudo_fakes=args.mode, pseudo_fake_magnitude=args.magnitude,
    )
    return model, recipe


def channels_last(model: torch.nn.Module) -> torch.nn.Module:
    """channels_last weights and clips (``channels_last_3d``: folding frames is then a view)."""
    model.to(memory_format=torch.channels_last)
    model.register_forward_pre_hook(
        lambda module, inputs: (inputs[0].contiguous(memory_format=torch.channels_last_3d), *inputs[1:]))
    return model


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--faces", type=Path, required=True, help="folder of face-crop folders (real videos) or a manifest")
    p.add_argument("--out", type=Path, required=True, help="output folder (OUT/run is the training run)")
    p.add_argument("--val", nargs="*", default=[], help="names of the folders held out for validation")
    p.add_argument("--mode", choices=("spatial", "temporal", "both"), default="both")
    p.add_argument("--magnitude", choices=("weak", "medium", "strong"), default="medium")
    p.add_argument("--model", default="dil_resnet50.tv_in1k")
    p.add_argument("--model-arg", action="append", metavar="KEY=JSON", help="model option (tiny CPU checks)")
    p.add_argument("--init", choices=("imagenet", "random"), default="imagenet")
    p.add_argument("--weights", type=Path, help="local ImageNet ResNet .safetensors (overrides --init)")
    p.add_argument("--epochs", type=int, default=30, help="paper: 30")
    p.add_argument("--repeats", type=int, default=40, help="times each training video is sampled per epoch")
    p.add_argument("--val-draws", type=int, default=4, help="pseudo-fakes per held-out video")
    p.add_argument("--img-size", type=int, default=224)
    p.add_argument("--batch-size", type=int, default=10, help="real clips per step (paper: 10); + their pseudo-fakes")
    p.add_argument("--num-snippets", type=int, default=4)
    p.add_argument("--test-num-snippets", type=int, default=8)
    p.add_argument("--workers", type=int, default=8)
    p.add_argument("--amp-dtype", choices=("float16", "bfloat16"), default="bfloat16")
    p.add_argument("--no-channels-last", dest="channels_last", action="store_false")
    p.add_argument("--device", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--time-limit", type=float, default=330.0, help="seconds of training (default 330)")
    args = p.parse_args(argv)
    if (args.out / "run").exists():
        raise SystemExit(f"{args.out / 'run'} exists (an earlier run); choose another --out")

    from torch.utils.data import Subset

    from dynsnip.data import FaceFramesDataset
    from dynsnip.data.pipeline import data_config_from_model
    from dynsnip.data.pseudo_fakes import PseudoFakeGenerator
    from dynsnip.engine import train
    from dynsnip.engine.pseudo_fakes import PseudoFakePairs

    start = time.perf_counter()
    torch.manual_seed(args.seed)
    train_entries, val_entries = real_entries(args.faces, args.val)
    if not train_entries:
        raise SystemExit("no training videos left after holding out --val")
    model, recipe = build(args)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        if args.channels_last:
            channels_last(model)
    config = data_config_from_model(model)
    size = (args.img_size, args.img_size)
    # Each video drawn `repeats` times per epoch (new random snippets each time): a Subset that
    # repeats indices, since a manifest (and a dataset's entry list) lists each video once.
    train_set = Subset(FaceFramesDataset(train_entries, num_snippets=recipe.num_snippets, size=size, mean=config["mean"],
                                         std=config["std"], snippet_len=recipe.snippet_len, train=True),
                       list(range(len(train_entries))) * args.repeats)
    val_set = None
    if val_entries:
        held_out = Subset(FaceFramesDataset(val_entries, num_snippets=recipe.test_num_snippets, size=size,
                                            mean=config["mean"], std=config["std"], snippet_len=recipe.snippet_len),
                          list(range(len(val_entries))) * args.val_draws)
        val_set = PseudoFakePairs(held_out, PseudoFakeGenerator(mode=args.mode, magnitude=args.magnitude),
                                  config["mean"], config["std"], recipe.snippet_len, seed=args.seed + 1,
                                  labels=[e.label for e in val_entries] * args.val_draws)
    run_dir = args.out / "run"
    setup_seconds = time.perf_counter() - start
    epoch_seconds: list[float] = []
    result = None
    train_start = time.perf_counter()
    for epoch in range(1, recipe.epochs + 1):
        t0 = time.perf_counter()
        result = train(recipe, train_set, val_set, run_dir, model=model, device=device, resume=epoch > 1,
                       progress=False, stop_after_epoch=epoch, data_name=f"real videos in {args.faces.name} + "
                       f"{args.mode} pseudo-fakes")
        epoch_seconds.append(time.perf_counter() - t0)
        elapsed = time.perf_counter() - train_start
        if elapsed + max(epoch_seconds) > args.time_limit:
            print(f"time limit: stopping after epoch {epoch} of {recipe.epochs} ({elapsed:.0f}s of {args.time_limit:.0f}s)")
            break
    summary = dict(
        device=str(device), gpu=torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        recipe=recipe.to_dict(), train_videos=[str(e.path) for e in train_entries],
        val_videos=[str(e.path) for e in val_entries], epochs_run=len(epoch_seconds), epoch_seconds=epoch_seconds,
        setup_seconds=setup_seconds, train_seconds=time.perf_counter() - train_start,
        clips_per_s=[h["clips_per_s"] for h in result.history], best=result.best,
        val=[h.get("val") for h in result.history], model_dir=str(result.model_dir),
        seconds=time.perf_counter() - start, channels_last=args.channels_last and device.type == "cuda",
    )
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    print(json.dumps({k: summary[k] for k in ("device", "gpu", "epochs_run", "best", "seconds", "model_dir")}, indent=1))
    return summary


if __name__ == "__main__":
    main()
