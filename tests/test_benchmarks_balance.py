"""``dynsnip train --balance-classes``: the smaller class is oversampled, nothing is dropped."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from torch.utils.data import Dataset

from dynsnip.cli import build_parser
from dynsnip.data.manifest import ManifestEntry
from dynsnip.engine.evaluate import item_info
from dynsnip.engine.sampling import balance_classes, balanced_indices


class Entries(Dataset):
    def __init__(self, labels):
        self.entries = [ManifestEntry(Path(f"v{i}.mp4"), y, "train", "Deepfakes" if y else None)
                        for i, y in enumerate(labels)]

    def __len__(self):
        return len(self.entries)

    def __getitem__(self, i):
        return i, self.entries[i].label


@pytest.mark.parametrize("n_real,n_fake", [(3, 12), (5, 13), (7, 2), (4, 4)])
def test_every_item_kept_and_classes_equal(n_real, n_fake):
    labels = [0] * n_real + [1] * n_fake
    indices = balanced_indices(labels, seed=1)
    assert set(indices) == set(range(len(labels)))  # nothing dropped
    per_class = Counter(labels[i] for i in indices)
    assert per_class[0] == per_class[1] == max(n_real, n_fake)
    small = [i for i, y in enumerate(labels) if y == (0 if n_real <= n_fake else 1)]
    repeats = Counter(i for i in indices if i in small)
    assert max(repeats.values()) - min(repeats.values()) <= 1  # spread evenly over the small class
    assert balanced_indices(labels, seed=1) == indices  # deterministic for a seed (exact resume)


def test_balanced_view_reports_original_items():
    data = Entries([0, 1, 1, 1, 1])  # FF++: four fakes per real
    view = balance_classes(data, seed=0)
    assert len(view) == 8 and Counter(view[i][1] for i in range(len(view))) == {0: 4, 1: 4}
    assert item_info(view, 5)["id"] == "v0.mp4"  # repeats of the real keep its id in reports


def test_one_class_or_no_labels_is_an_error():
    with pytest.raises(ValueError, match="no real"):
        balance_classes(Entries([1, 1]))
    with pytest.raises(TypeError, match="entries"):
        balance_classes([(0, 1)])


def test_train_option_is_off_by_default():
    parser = build_parser()
    base = ["train", "--manifest", "m.csv", "--out", "run"]
    assert parser.parse_args(base).balance_classes is False
    assert parser.parse_args(base + ["--balance-classes"]).balance_classes is True


def test_dynsnip_train_balances_an_imbalanced_manifest(tmp_path):
    import json

    from dynsnip.cli import main
    from test_benchmarks_protocol import write_sequence

    rows = ["path,label,split,method"]
    for name, label in (("r0", 0), ("f0", 1), ("f1", 1), ("f2", 1)):  # one real, three fakes
        write_sequence(tmp_path / name, bool(label), seed=len(rows))
        rows.append(f"{name},{label},train,{'Deepfakes' if label else ''}")
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "run"
    assert main(["train", "--train", str(tmp_path / "m.csv"), "--out", str(out), "--model", "dil_resnet18",
                 "--no-pretrained", "--model-arg", "channels=[8,16,32,64]", "--model-arg", "stem_width=8",
                 "--epochs", "1", "--batch-size", "2", "--img-size", "16", "--num-snippets", "1", "--workers", "0",
                 "--no-progress", "--balance-classes"]) == 0
    training = json.loads((out / "model" / "config.json").read_text())["training"]
    assert training["num_train_clips"] == 6 and "balanced" in training["data"]  # the real 3 times, each fake once
