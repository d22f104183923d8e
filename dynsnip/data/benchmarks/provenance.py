"""Which dataset a manifest holds: its recorded provenance, and the clues that can refute it.

``dynsnip manifest`` writes a ``dataset`` column: the **tag** of the reader that wrote the
row, ``<dataset>[:<variant>]``, where the variant is the option that changes the data:

==================== ===================================================================
tag                   written by
==================== ===================================================================
``ffpp:c23``          ``dynsnip manifest ffpp ROOT --compression c23`` (also ``raw``, ``c40``)
``celebdf:v2``        ``dynsnip manifest celebdf ROOT --version v2`` (also ``v1``)
``dfdc``              ``dynsnip manifest dfdc ROOT``
``wilddeepfake``      ``dynsnip manifest wilddeepfake ROOT``
``deeperforensics:V`` ``dynsnip manifest deeperforensics ROOT --variant V``
==================== ===================================================================

``dynsnip extract-faces --manifest`` carries the column into its ``faces.csv``.
:func:`check_provenance` is what ``dynsnip benchmark`` runs before scoring anything: the
rows must record the dataset the protocol needs. A manifest that records nothing (written
by hand, by another tool, or before the column existed) is refused unless the user vouches
for it (``--data-is TAG``); even then, rows whose manipulation ``method`` or whose path
(the dataset's own folder names: ``manipulated_sequences``, ``Celeb-synthesis``,
``dfdc_train_part_N``, ``fake_test``, ...) name another dataset refute the vouch.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Mapping

__all__ = ["dataset_tag", "split_tag", "describe_tag", "method_dataset", "path_clue", "check_provenance",
           "DATASET_NAMES", "VARIANT_OPTIONS"]

DATASET_NAMES = {"ffpp": "FaceForensics++", "celebdf": "Celeb-DF", "dfdc": "DFDC",
                 "deeperforensics": "DeeperForensics-1.0", "wilddeepfake": "WildDeepfake"}
# dataset -> (the reader option that names its variant, that option's default)
VARIANT_OPTIONS = {"ffpp": ("compression", "c23"), "celebdf": ("version", "v2"),
                   "deeperforensics": ("variant", "end_to_end")}
_FFPP_METHODS = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures", "FaceShifter", "DeepFakeDetection")
_FFPP_COMPRESSIONS = ("raw", "c23", "c40")
# folder names that only one dataset's layout uses
_MARKERS = {"original_sequences": "ffpp", "manipulated_sequences": "ffpp",
            "Celeb-real": "celebdf", "Celeb-synthesis": "celebdf", "YouTube-real": "celebdf",
            "real_train": "wilddeepfake", "fake_train": "wilddeepfake", "real_test": "wilddeepfake",
            "fake_test": "wilddeepfake", "manipulated_videos": "deeperforensics"}


def dataset_tag(dataset: str, options: Mapping[str, Any] | None = None) -> str:
    """The tag of ``dataset`` read with ``options`` (``("ffpp", {"compression": "c40"})`` ->
    ``ffpp:c40``; the reader's default variant when the option is not given)."""
    if dataset not in VARIANT_OPTIONS:
        return dataset
    option, default = VARIANT_OPTIONS[dataset]
    return f"{dataset}:{(options or {}).get(option) or default}"


def split_tag(tag: str) -> tuple[str, str | None]:
    """``ffpp:c23`` -> ``("ffpp", "c23")``; ``dfdc`` -> ``("dfdc", None)``."""
    dataset, _, variant = tag.strip().partition(":")
    return dataset, variant or None


def describe_tag(tag: str) -> str:
    """``ffpp:c23`` -> ``FaceForensics++ c23 (ffpp:c23)``."""
    dataset, variant = split_tag(tag)
    name = DATASET_NAMES.get(dataset, dataset)
    return f"{name}{' ' + variant if variant else ''} ({tag})"


def method_dataset(method: str | None) -> str | None:
    """The dataset whose reader writes ``method`` for its fakes (None: no reader does)."""
    if not method:
        return None
    if method in _FFPP_METHODS:
        return "ffpp"
    if method == "Celeb-synthesis":
        return "celebdf"
    if method == "DFDC" or method.startswith("method_"):  # the preview's fakes: method_A, method_B, ...
        return "dfdc"
    if method == "WildDeepfake":
        return "wilddeepfake"
    if method.startswith("DeeperForensics-"):
        return "deeperforensics"
    return None


def path_clue(path: str | Path) -> tuple[str, str | None] | None:
    """``(dataset, variant or None)`` named by the innermost folder of ``path`` that only one
    dataset's layout uses (FF++'s compression folder gives the variant), or None."""
    parts = Path(path).parts
    for i in range(len(parts) - 1, -1, -1):
        part = parts[i]
        dataset = "dfdc" if part.startswith("dfdc_train_part_") else _MARKERS.get(part)
        if dataset is None:
            continue
        variant = None
        if dataset == "ffpp":
            variant = next((p for p in parts[i + 1:i + 4] if p in _FFPP_COMPRESSIONS), None)
        return dataset, variant
    return None


def _rows(n: int) -> str:
    return f"{n} row{'s' if n != 1 else ''}"


def _counted(counter: Counter, limit: int = 3) -> str:
    items = [f"{key} ({_rows(n)})" for key, n in counter.most_common(limit)]
    return ", ".join(items) + (f" and {len(counter) - limit} more" if len(counter) > limit else "")


def check_provenance(
    entries: Iterable[Any],
    needed: str,
    *,
    source: object,
    purpose: str,
    vouched: str | None = None,
    flag: str = "--data-is",
    match_variant: bool = True,
) -> str:
    """Check that ``entries`` (manifest entries with ``dataset``, ``method``, ``path``) are
    data of tag ``needed``; return how that is known (one line).

    Args:
        needed: the tag required (``celebdf:v2``).
        source: the manifest, for messages.
        purpose: what needs it, for messages (``protocol celebdf``).
        vouched: the tag the user vouches for (``flag``), accepted only for rows that record
            no dataset and only when it is ``needed``.
        match_variant: also require the variant (``c23``); False compares the dataset only.

    Raises:
        ValueError (one line): rows record another dataset (or some record one and some
            none); nothing is recorded and the rows' methods or paths name another dataset;
            nothing is recorded and nothing was vouched; ``vouched`` is not ``needed``.
    """
    needed_dataset, needed_variant = split_tag(needed)
    want = needed if match_variant else needed_dataset
    option = VARIANT_OPTIONS.get(needed_dataset)
    hint = (f"write it with `dynsnip manifest {needed_dataset} ROOT"
            + (f" --{option[0]} {needed_variant}" if option and match_variant else "") + "`")

    def is_needed(tag: str) -> bool:  # a recorded or vouched tag: the variant must match too
        dataset, variant = split_tag(tag)
        return dataset == needed_dataset and (not match_variant or variant == needed_variant)

    def contradicts(clue: tuple[str, str | None]) -> bool:  # a clue: an unknown variant does not contradict
        dataset, variant = clue
        return dataset != needed_dataset or (match_variant and variant is not None and variant != needed_variant)

    if vouched is not None and not is_needed(vouched):
        raise ValueError(f"{flag} {vouched}: {purpose} needs {describe_tag(want)} data; expected {flag} {want}")
    entries = list(entries)
    if not entries:  # nothing to score or train on: the caller's own check names that
        return "no rows to check"
    recorded = Counter(str(e.dataset) for e in entries if getattr(e, "dataset", None))
    unrecorded = sum(1 for e in entries if not getattr(e, "dataset", None))
    if recorded:
        wrong = Counter({t: n for t, n in recorded.items() if not is_needed(t)})
        if wrong and all(split_tag(t)[0] == needed_dataset for t in wrong):  # the dataset, another release
            raise ValueError(f"{source}: {purpose} needs {describe_tag(want)} data, but its 'dataset' column records "
                             f"{_counted(wrong)}: another release or compression of the dataset than the protocol "
                             f"tests; give {describe_tag(want)} data (if the rows are that after all, {hint})")
        if wrong:
            raise ValueError(f"{source}: {purpose} needs {describe_tag(want)} data, but its 'dataset' column records "
                             f"{_counted(wrong)}; {hint}")
        if unrecorded:
            raise ValueError(f"{source}: {purpose} needs {describe_tag(want)} data; its 'dataset' column records "
                             f"{_counted(recorded)} but {unrecorded} row(s) record none (a mixed manifest); {hint}")
        return f"recorded in the manifest's dataset column: {', '.join(sorted(recorded))}"
    clues: list[str] = []
    by_method: Counter = Counter()
    methods: dict[str, set] = {}
    for e in entries:
        dataset = method_dataset(getattr(e, "method", None))
        if dataset is not None and dataset != needed_dataset:
            by_method[dataset] += 1
            methods.setdefault(dataset, set()).add(e.method)
    if by_method:
        clues.append("its fakes' methods name " + ", ".join(
            f"{DATASET_NAMES.get(d, d)} ({_rows(n)}: {', '.join(sorted(methods[d])[:3])})" for d, n in by_method.most_common()))
    by_path: Counter = Counter()
    example: dict[str, Path] = {}
    for e in entries:
        clue = path_clue(e.path)
        if clue is not None and contradicts(clue):
            tag = clue[0] + (f":{clue[1]}" if clue[1] else "")
            by_path[tag] += 1
            example.setdefault(tag, Path(e.path))
    if by_path:
        clues.append("its paths are in the layout of " + ", ".join(
            f"{describe_tag(t)} ({_rows(n)}, e.g. {example[t]})" for t, n in by_path.most_common()))
    if clues:
        raise ValueError(f"{source}: {purpose} needs {describe_tag(want)} data, but it records no dataset and "
                         f"{'; '.join(clues)}; {hint}")
    if vouched is not None:
        return f"vouched for by {flag} {vouched} (the manifest records no dataset)"
    raise ValueError(f"{source} records no dataset (no 'dataset' column: written by hand, by another tool or before "
                     f"dynsnip recorded it); {purpose} needs {describe_tag(want)} data: {hint}, or pass {flag} {want} "
                     "to vouch that it is")
