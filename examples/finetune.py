"""Fine-tune and evaluate a DIL detector with dynsnip's library API.

This is what ``dynsnip train`` + ``dynsnip evaluate`` do, written out so each step can be
changed: the recipe (the paper's defaults), the model source, the datasets, the loop, the
report and the hub-layout checkpoint.

Your data: crop the faces once, then fine-tune (manifest columns: path,label,split[,method])::

    dynsnip extract-faces --manifest videos.csv --out faces/
    python examples/finetune.py --manifest faces/faces.csv --out runs/ff

No data at hand: ``--toy`` writes a small real/fake set of face-frame folders made from the
footage bundled with dynsnip (the re-rendering of ``dynsnip demo``: fakes flicker frame by
frame) and runs the same code on it with a small model, in a couple of minutes on a CPU. The
toy run is only long enough to exercise the API; ``dynsnip demo`` is the run that shows the
method learning.

Multi-GPU: ``torchrun --nproc_per_node 8 examples/finetune.py --manifest ...``.
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

import dynsnip  # noqa: F401  (registers the dil_* models with timm)
from dynsnip.data import read_manifest
from dynsnip.engine import Recipe, build_model, evaluate, make_dataset, train, write_report
from dynsnip.engine.distributed import cleanup_distributed
from dynsnip.hub.records import evaluation_record, record_evaluation


def write_toy_manifest(root: Path) -> Path:
    """Real/fake face-frame folders from the bundled footage, and their manifest."""
    import numpy as np
    from PIL import Image

    from dynsnip.data import bundled_video
    from dynsnip.demo.synthetic import FlickerClips, face_footage

    manifest = root / "manifest.csv"
    if manifest.is_file():
        return manifest
    rows = []
    splits = {"train": "carphone_pristine", "val": "Zhling_1280x720"}  # different people for validation
    for split, video in splits.items():
        footage = face_footage(bundled_video(video), size=32, max_frames=48)
        clips = FlickerClips([footage], num_snippets=2, snippet_len=4, window=16, stride=8, draws=3, seed=len(split))
        for i in range(len(clips)):
            frames, label = clips.render(i)  # 8 frames: 2 snippets of 4
            folder = root / f"{split}_{i:03d}"
            folder.mkdir(parents=True, exist_ok=True)
            for t, frame in enumerate(frames):
                Image.fromarray(np.ascontiguousarray(frame)).save(folder / f"{t:06d}.png")
            rows.append({"path": folder.name, "label": label, "split": split, "method": "flicker" if label else ""})
    with manifest.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["path", "label", "split", "method"])
        writer.writeheader()
        writer.writerows(rows)
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--manifest", type=Path, help="manifest with split train/val[/test] rows")
    parser.add_argument("--out", type=Path, default=Path("runs/finetune"))
    parser.add_argument("--toy", action="store_true", help="make a small set from the bundled footage first")
    args = parser.parse_args()

    if args.toy:
        import torch

        # Small CPU networks run fastest on one thread (OpenMP spin-waiting between hundreds of
        # tiny operations makes several threads slower here).
        torch.set_num_threads(1)
        # The paper's recipe with a budget a CPU can afford: a half-width ResNet-18 from random
        # init at 32 px, U=2 snippets, lr 1e-3 (no ImageNet weights), 3 epochs.
        recipe = Recipe(model="dil_resnet18", pretrained=False, img_size=32, num_snippets=2, test_num_snippets=2,
                        lr=1e-3, epochs=3, batch_size=8, num_workers=0)
        model_args = dict(channels=(32, 64, 128, 256), stem_width=32)
        # next to the run folder, not in it: `train` refuses a folder that holds anything but a run
        manifest = write_toy_manifest(args.out.with_name(args.out.name + "_toy_faces"))
    else:
        if args.manifest is None:
            parser.error("give --manifest, or --toy to try it on a small generated set")
        recipe = Recipe()  # the paper: dil_resnet50.tv_in1k, Adam 1e-4, batch 10, 30 epochs, U=4/8, T=4, 224 px
        model_args = {}
        manifest = args.manifest

    # 1. the model: a name, a pretrained tag, a run / hub-layout dir, a .safetensors file or hf-hub:owner/name
    model = build_model(recipe.model, pretrained=recipe.pretrained, **model_args)
    # 2. the data: training clips get random snippet offsets and the horizontal flip, validation clips neither
    train_set = make_dataset(manifest, model, recipe, train=True, split="train")
    val_set = make_dataset(manifest, model, recipe, train=False, split="val")
    # 3. the loop: Adam + BCE, lr / 10 on a validation plateau, resumable checkpoint every epoch
    result = train(recipe, train_set, val_set, args.out, model=model, data_name=manifest.name)
    # 4. the paper's metrics (video-level AUC / accuracy, per manipulation method) of the best model,
    #    on the test rows when the manifest has them (U=8 in the paper's protocol)
    best = build_model(result.model_dir)
    split = "test" if read_manifest(manifest, split="test") else "val"
    test_set = make_dataset(manifest, best, recipe, train=False, split=split)
    evaluation = evaluate(best, test_set, batch_size=recipe.batch_size)
    json_path, csv_path = write_report(evaluation.report, args.out / f"final_{split}_report", evaluation.predictions)
    overall = evaluation.report["overall"]
    print(f"best epoch {result.best['epoch']}: {split} AUC {overall['auc']:.3f}, ACC {overall['accuracy']:.3f} "
          f"({json_path}, {csv_path})")
    # 5. record the result in the saved model's config.json and card, next to the validation result
    #    (a result on val replaces it: one result per data and split)
    record_evaluation(result.model_dir, evaluation_record(
        evaluation.report, data=manifest.name, split=split, num_snippets=recipe.test_num_snippets,
        snippet_len=recipe.snippet_len, img_size=recipe.img_size, source="examples/finetune.py",
    ))
    stated = "the validation and test results" if split == "test" else "the val result"
    print(f"checkpoint ready to push, its card states {stated}: {result.model_dir}")
    print(f"  dynsnip push {result.model_dir} owner/name     # or dynsnip.push_to_hub('{result.model_dir}', 'owner/name')")
    cleanup_distributed()


if __name__ == "__main__":
    main()
