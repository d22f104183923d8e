"""The paper's evaluation protocols (Tables 1-3) and its reported numbers.

A :class:`Protocol` names the dataset a benchmark is tested on (and trained on, for
``dynsnip benchmark --train``), the split, the rows of the paper's table and where the
paper's numbers come from. The numbers themselves are package data
(``dynsnip/assets/benchmarks/paper_results.json``: the "Ours" row of each table, with the
caption, the metric and the sentence of the paper that names the metric).

========================= ======================================== ======= =====================
protocol                  test set                                  table   training (--train)
========================= ======================================== ======= =====================
``ffpp-hq``               FF++ c23 test split, per method + all four 1 (ACC) FF++ c23, 30 epochs
``ffpp-lq``               FF++ c40 test split, per method + all four 1 (ACC) FF++ c40, 30 epochs
``celebdf``               Celeb-DF v2 test list                      2       Celeb-DF, 30 epochs
``dfdc``                  DFDC test split                            2       DFDC, 30 epochs
``wilddeepfake``          WildDeepfake test sequences                2       WildDeepfake, 30 epochs
``ffpp-to-celebdf``       Celeb-DF v2 test list                      3 (AUC) FF++ c40 (LQ), 45 epochs
``ffpp-to-dfdc``          DFDC test split                            3 (AUC) FF++ c40 (LQ), 45 epochs
``ffpp-to-ffpp-df``       FF++ c40 test split, reals vs Deepfakes    3 (AUC) FF++ c40 (LQ), 45 epochs
========================= ======================================== ======= =====================

Table 3's training set is FF++ LQ: "we train the model on FF++ LQ datasets against four
manipulations" (Results on cross-dataset generalization), hence c40 when ``--train-data``
is a dataset root. Its FF++-DF column is the FF++ test split's reals against its Deepfakes
fakes; the paper does not name that test set's compression, so ``ffpp-to-ffpp-df`` reads it
at the training data's c40 (our reading).

:attr:`Protocol.data_tag` is the provenance the test data must record (``ffpp:c23``,
``celebdf:v2``, ...; :mod:`.provenance`); :attr:`Protocol.train_tag` that of the training
data, of which only the dataset is checked (``ffpp-to-celebdf`` may train on c23 or c40).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

from .ffpp import PAPER_METHODS
from .provenance import dataset_tag

__all__ = ["Protocol", "PROTOCOLS", "paper_results", "PAPER_RESULTS_FILE"]

PAPER_RESULTS_FILE = Path(__file__).resolve().parent.parent.parent / "assets" / "benchmarks" / "paper_results.json"


@dataclass(frozen=True)
class Protocol:
    """One benchmark protocol.

    Attributes:
        name: the ``dynsnip benchmark`` argument.
        title: what the table is called.
        dataset, options: the :func:`~dynsnip.data.benchmarks.build_manifest` reader and
            options for a test-data root.
        table: the paper's table (key of ``paper_results.json``).
        rows: the table's rows: manipulation methods (each: all reals + that method's fakes),
            or one dataset column name (all test videos).
        per_method: rows are methods, plus one row for all of them together.
        train_dataset, train_options: reader for a ``--train-data`` root (default: the test's).
        epochs: the paper's epochs for ``--train`` (30; 45 for cross-dataset).
        train_methods: the manipulation methods ``--train`` trains and validates on (None:
            every fake of the training data): the FF++ protocols train on the paper's four,
            whatever else (FaceShifter, DeepFakeDetection) the manifest holds.
    """

    name: str
    title: str
    dataset: str
    table: str
    rows: tuple[str, ...]
    options: Mapping[str, Any] = field(default_factory=dict)
    per_method: bool = False
    train_dataset: str | None = None
    train_options: Mapping[str, Any] | None = None
    epochs: int = 30
    split: str = "test"
    train_methods: tuple[str, ...] | None = None

    def paper(self) -> dict[str, Any]:
        """``{"metric", "values": {row: value}, "source": {...}}`` of the paper's "Ours" row."""
        data = paper_results()
        table = data["tables"][self.table]
        return {
            "metric": table["metric"],
            "values": dict(table["columns"][self.name]),
            "source": {"paper": data["paper"], "table": int(self.table), "caption": table["caption"],
                       "row": data["row"], "metric_source": table["metric_source"], "page": data["page_note"]},
        }

    @property
    def data_tag(self) -> str:
        """The tag (dataset and variant) the test data must record: ``celebdf:v2``."""
        return dataset_tag(self.dataset, self.options)

    @property
    def train_tag(self) -> str:
        """The tag of the training data's reader (only its dataset is checked)."""
        return dataset_tag(*self.train_reader())

    def train_reader(self) -> tuple[str, Mapping[str, Any]]:
        if self.train_dataset is None:
            return self.dataset, self.options
        return self.train_dataset, self.train_options or {}


@lru_cache(maxsize=1)
def paper_results() -> dict[str, Any]:
    """The paper's numbers as bundled (see the module docstring)."""
    return json.loads(PAPER_RESULTS_FILE.read_text(encoding="utf-8"))


PROTOCOLS: dict[str, Protocol] = {
    p.name: p
    for p in (
        Protocol("ffpp-hq", "FaceForensics++ HQ (c23)", "ffpp", "1", PAPER_METHODS, {"compression": "c23"},
                 per_method=True, train_methods=PAPER_METHODS),
        Protocol("ffpp-lq", "FaceForensics++ LQ (c40)", "ffpp", "1", PAPER_METHODS, {"compression": "c40"},
                 per_method=True, train_methods=PAPER_METHODS),
        Protocol("celebdf", "Celeb-DF (v2)", "celebdf", "2", ("Celeb-DF",)),
        Protocol("dfdc", "DFDC", "dfdc", "2", ("DFDC",)),
        Protocol("wilddeepfake", "WildDeepfake", "wilddeepfake", "2", ("WildDeepfake",)),
        Protocol("ffpp-to-celebdf", "FF++ LQ (c40) -> Celeb-DF (v2)", "celebdf", "3", ("Celeb-DF",),
                 train_dataset="ffpp", train_options={"compression": "c40"}, epochs=45, train_methods=PAPER_METHODS),
        Protocol("ffpp-to-dfdc", "FF++ LQ (c40) -> DFDC", "dfdc", "3", ("DFDC",),
                 train_dataset="ffpp", train_options={"compression": "c40"}, epochs=45, train_methods=PAPER_METHODS),
        Protocol("ffpp-to-ffpp-df", "FF++ LQ (c40) -> FF++ Deepfakes (c40)", "ffpp", "3", ("Deepfakes",),
                 {"compression": "c40"}, per_method=True, epochs=45, train_methods=PAPER_METHODS),
    )
}
