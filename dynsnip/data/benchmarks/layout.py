"""What every benchmark layout reader shares: rows, the inventory of what was found, errors.

A reader (one file per dataset in this package) walks a dataset root and returns a
:class:`BenchmarkManifest`: one :class:`BenchmarkRow` per video (or frame folder) found on
disk, and an :class:`Inventory` per group of videos the layout promises (e.g. FF++ c23:
1000 real videos, 1000 per method), with the missing ones named. Nothing is written until
:meth:`BenchmarkManifest.write` is called, and it refuses to replace an existing file
unless told to.

Manifest columns: ``path,label,split,method,source,dataset`` (label 1 = fake). ``source``
is the real video a fake was made from, where the dataset says so, written exactly as that
real video's own ``path`` in the same manifest (empty when unknown or not on disk).
``dataset`` is the manifest's provenance, the tag of the reader that wrote the row (e.g.
``ffpp:c23``, ``celebdf:v2``; see :mod:`.provenance`): ``dynsnip benchmark`` checks it
against the protocol before scoring anything.

List files name paths (DFDC's ``metadata.json``, Celeb-DF's test list, ...): every such name
goes through :func:`relative_name`, which refuses one that leaves the folder it is relative
to (``../../etc/passwd``, ``/etc/passwd``); JSON layout files are read with
:func:`load_json`, which refuses a key given twice with two values (no last-wins) and
nesting too deep to parse.
"""
from __future__ import annotations

import csv
import json
import os
import posixpath
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Hashable, Iterable, Iterator, Sequence

__all__ = ["BenchmarkRow", "Inventory", "BenchmarkManifest", "LayoutError", "require_path",
           "assign_val_by_group", "val_note", "present", "MANIFEST_COLUMNS", "relative_name", "load_json", "is_inside"]

MANIFEST_COLUMNS = ("path", "label", "split", "method", "source", "dataset")


class LayoutError(ValueError):
    """The root is not the named dataset (an expected folder or file is missing) or a file of
    the layout (metadata, list, split file) cannot be parsed."""


@dataclass(frozen=True)
class BenchmarkRow:
    """One manifest row: ``path`` (video file or frame folder), ``label`` (0 real, 1 fake),
    ``split`` (train / val / test), ``method`` (manipulation method of a fake, empty for
    reals) and ``source`` (the real video the fake was made from, or None)."""

    path: Path
    label: int
    split: str
    method: str = ""
    source: Path | None = None


@dataclass
class Inventory:
    """A group of videos the layout promises: how many were ``expected`` (None: the layout
    does not say), how many ``found``, and the ``missing`` ones (paths relative to the root;
    ``missing_rows``: the rows they would be, where the layout says their split, so that a
    protocol can count the missing videos it tests apart from the training ones; ``split``: the
    split of the whole group where the layout says, e.g. Celeb-DF's test list, whose shortfall
    names no video; ``method``: the method column of the whole group where it has one, e.g.
    DeepFakeDetection's, so that a protocol that never tests it does not count its shortfall)."""

    group: str
    expected: int | None
    found: int = 0
    missing: list[str] = field(default_factory=list)
    missing_rows: list[BenchmarkRow] = field(default_factory=list)
    split: str | None = None
    method: str | None = None

    def present(self, path: Path, name: str, row: BenchmarkRow | None = None) -> bool:
        """Whether the video ``path`` is there: counted as found, or recorded as missing under ``name``
        (and ``row``, the manifest row it would be, in ``missing_rows``)."""
        if path.is_file():
            self.found += 1
            return True
        self.missing.append(name)
        if row is not None:
            self.missing_rows.append(row)
        return False

    @property
    def num_missing(self) -> int:
        """The missing videos: those named, or the shortfall against ``expected`` where the
        layout lists no names (e.g. Celeb-DF's folders)."""
        shortfall = self.expected - self.found if self.expected is not None else 0
        return max(len(self.missing), shortfall)


def first_named(names: Sequence[str], limit: int = 3) -> str:
    """``a, b, c (+2 more)``: the first ``limit`` of ``names``, for a note."""
    more = f" (+{len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def require_path(root: Path, relative: str, dataset: str, hint: str = "") -> Path:
    """``root / relative`` if it exists; otherwise a :class:`LayoutError` naming it."""
    path = root / relative
    if not path.exists():
        raise LayoutError(
            f"{root} is not a {dataset} root: {relative} is missing (expected {path})" + (f"; {hint}" if hint else "")
        )
    return path


def relative_name(name: object, where: str, folder: str = "the dataset root") -> str:
    """``name`` from a list file as a normalised relative POSIX path (``./a//b.mp4`` ->
    ``a/b.mp4``, backslashes read as separators).

    Raises:
        LayoutError: ``name`` is not a string, is empty, absolute (``/etc/passwd``, ``C:/x``)
            or leaves ``folder`` (``../../etc/passwd``, ``a/../../b``).
    """
    if not isinstance(name, str):
        raise LayoutError(f"{where}: path {name!r} is a {type(name).__name__}; expected a relative path (a string)")
    text = name.strip().replace("\\", "/")
    normal = posixpath.normpath(text) if text else ""
    if (not text or text.startswith("/") or (len(text) > 1 and text[1] == ":") or normal in (".", "..")
            or normal.startswith("../")):
        raise LayoutError(f"{where}: path {name!r} is outside {folder}; expected a path relative to it, "
                          "without leading / or ..")
    return normal


def is_inside(path: str | os.PathLike[str], folder: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is ``folder`` or lies under it, as written or with links resolved."""
    for resolve in (os.path.abspath, os.path.realpath):
        a, b = Path(resolve(path)), Path(resolve(folder))
        if a == b or b in a.parents:
            return True
    return False


def _strict_object(pairs: list[tuple[str, object]]) -> dict:
    """A JSON object that refuses a key given twice with two values (``json``'s default keeps the last)."""
    data: dict = {}
    for key, value in pairs:
        if key in data and data[key] != value:
            raise LayoutError(f"key {key!r} is given twice with different values ({data[key]!r}, then {value!r}); "
                              "expected each key once")
        data[key] = value
    return data


def load_json(path: Path) -> object:
    """The JSON document at ``path``, read strictly (see the module docstring).

    Raises:
        LayoutError: the file cannot be read or parsed, a key repeats with another value, or
            the nesting is too deep to parse.
    """
    try:
        return json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=_strict_object)
    except LayoutError as err:
        raise LayoutError(f"{path}: {err}") from None
    except RecursionError:
        raise LayoutError(f"{path} is nested too deeply to be read; expected a layout file of a few levels") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise LayoutError(f"{path} cannot be read as JSON: {err}") from err


def _shown(path: Path, folder: Path) -> str:
    """``path`` relative to ``folder`` when it lies inside it, else absolute (links kept as they are)."""
    absolute = Path(os.path.abspath(path))
    try:
        return absolute.relative_to(Path(os.path.abspath(folder))).as_posix()
    except ValueError:
        return absolute.as_posix()


@dataclass
class BenchmarkManifest:
    """The manifest of one dataset root: ``rows`` found on disk, ``inventory`` of what the
    layout promises, ``notes`` (choices made, e.g. how the validation split was drawn),
    ``tag`` (the provenance written in the ``dataset`` column, e.g. ``celebdf:v2``; empty:
    unknown), ``left_out`` (files on disk the manifest cannot hold, ``{what: how many}``: videos
    no label file lists, archives not extracted; a note explains each, and ``dynsnip manifest``
    exits with 1 as for missing videos)."""

    dataset: str
    root: Path
    rows: list[BenchmarkRow]
    inventory: list[Inventory]
    notes: list[str] = field(default_factory=list)
    tag: str = ""
    left_out: dict[str, int] = field(default_factory=dict)

    @property
    def num_missing(self) -> int:
        return sum(i.num_missing for i in self.inventory)

    @property
    def missing_rows(self) -> list[BenchmarkRow]:
        """The rows the missing videos would be, where the layout says their split (not every
        missing video: a shortfall against a published count names none)."""
        return [row for item in self.inventory for row in item.missing_rows]

    def split_counts(self) -> dict[str, Counter]:
        """``{split: Counter({"real": n, "fake": m})}``."""
        counts: dict[str, Counter] = {}
        for row in self.rows:
            counts.setdefault(row.split, Counter())["fake" if row.label else "real"] += 1
        return counts

    def summary(self, limit: int = 5) -> str:
        """A text table: rows per split, then expected / found / missing per group (first
        ``limit`` missing named), then the notes."""
        splits = ", ".join(f"{s} {c['real']} real + {c['fake']} fake" for s, c in sorted(self.split_counts().items()))
        lines = [f"{self.dataset} at {self.root}: {len(self.rows)} rows ({splits or 'none'})"]
        width = max([5] + [len(i.group) for i in self.inventory])
        lines.append(f"  {'group':<{width}}  {'expected':>8}  {'found':>6}  {'missing':>7}")
        for item in self.inventory:
            expected = "?" if item.expected is None else str(item.expected)
            line = f"  {item.group:<{width}}  {expected:>8}  {item.found:>6}  {item.num_missing:>7}"
            if item.missing:
                more = f" (+{len(item.missing) - limit} more)" if len(item.missing) > limit else ""
                line += "  e.g. " + ", ".join(item.missing[:limit]) + more
            elif item.num_missing:
                line += "  (fewer than the dataset's published count; the layout lists no names)"
            lines.append(line)
        if self.num_missing:
            lines.append(f"  {self.num_missing} video(s) the layout promises are missing on disk (a partial download?); "
                         "the manifest holds the others")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def write(self, out: str | os.PathLike[str], overwrite: bool = False) -> Path:
        """Write the rows as CSV (``path,label,split,method,source,dataset``; paths relative to
        the file's folder when inside it). The file appears complete or not at all.

        Raises:
            FileExistsError: ``out`` exists and ``overwrite`` is False.
            ValueError: there are no rows, or ``out`` lies inside the dataset root (it could
                replace one of the dataset's own files, e.g. ``metadata.json``).
        """
        out = Path(out)
        if self.root.is_dir() and is_inside(out, self.root):
            raise ValueError(f"{out} is inside the dataset root {self.root}; refusing to write there (the dataset's "
                             "own files stay untouched): expected --out outside the root, e.g. in the folder above it")
        if not self.rows:
            raise ValueError(f"{self.dataset} at {self.root}: no videos found; nothing to write")

        def lines(folder: Path) -> Iterator[list]:
            for row in self.rows:
                source = _shown(row.source, folder) if row.source is not None else ""
                yield [_shown(row.path, folder), row.label, row.split, row.method, source, self.tag]

        return write_csv_whole(out, MANIFEST_COLUMNS, lines, overwrite)


def write_csv_whole(out: str | os.PathLike[str], header: Sequence[str], lines: Callable[[Path], Iterable[list]],
                    overwrite: bool = False) -> Path:
    """Write ``header`` and ``lines(folder)`` (``folder``: the file's, for relative paths) as CSV at
    ``out``, through a temporary file beside it: the file appears complete or not at all.

    Raises:
        FileExistsError: ``out`` exists and ``overwrite`` is False (checked before anything is written).
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; refusing to overwrite it (pass --overwrite to replace it)")
    folder = out.parent if str(out.parent) else Path(".")
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{out.name}.partial-{os.getpid()}"
    try:
        with tmp.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows(lines(folder))
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return out


def assign_val_by_group(
    rows: Sequence[BenchmarkRow],
    group_of: Callable[[BenchmarkRow], Hashable],
    fraction: float,
    seed: int = 0,
) -> list[BenchmarkRow]:
    """Move whole groups of ``train`` rows to ``val`` until about ``fraction`` of them moved.

    Groups (an identity, a real video with its fakes) are shuffled with ``seed`` and taken
    in that order while the ``val`` share stays at or below ``fraction``; when no group is
    that small, the one group closest to ``fraction`` is taken (at least one when
    ``fraction > 0``). A group is never taken when it would leave a class (real or fake)
    without training rows: val never holds a class's whole training set (nothing moves when
    every group would). No group is ever split between train and val. Rows of other splits
    are unchanged; :func:`val_note` says the share that resulted.

    Raises:
        ValueError: ``fraction`` outside [0, 1).
    """
    if not 0 <= fraction < 1:
        raise ValueError(f"the validation fraction must be in [0, 1), got {fraction!r}")
    train = [r for r in rows if r.split == "train"]
    if fraction == 0 or not train:
        return list(rows)
    sizes = Counter(group_of(r) for r in train)
    labels: dict[Hashable, Counter] = {}
    for r in train:
        labels.setdefault(group_of(r), Counter())[r.label] += 1
    left = Counter(r.label for r in train)  # training rows per class still in train
    groups = sorted(sizes, key=str)
    random.Random(seed).shuffle(groups)
    target = fraction * len(train)

    def keeps_every_class(group: Hashable) -> bool:
        return all(left[label] - n > 0 for label, n in labels[group].items())

    def take(group: Hashable) -> None:
        chosen.add(group)
        left.subtract(labels[group])

    chosen: set = set()
    taken = 0
    for group in groups:
        if taken + sizes[group] <= target and keeps_every_class(group):
            take(group)
            taken += sizes[group]
    if not chosen:  # every group is larger than the target: the one nearest to it, if any may move
        allowed = [g for g in groups if keeps_every_class(g)]
        if allowed:
            take(min(allowed, key=lambda g: abs(sizes[g] - target)))
    return [BenchmarkRow(r.path, r.label, "val", r.method, r.source) if r.split == "train" and group_of(r) in chosen
            else r for r in rows]


def val_note(rows: Sequence[BenchmarkRow], fraction: float, seed: int, drawn_by: str) -> str:
    """The manifest note on a validation split drawn by :func:`assign_val_by_group`: the
    fraction asked and the share of the training videos (and of each class) it gave."""
    pool = [r for r in rows if r.split in ("train", "val")]
    val = [r for r in pool if r.split == "val"]
    share = len(val) / len(pool) if pool else 0.0
    per_class = ", ".join(f"{sum(r.split == 'val' for r in pool if r.label == y)} of "
                          f"{sum(r.label == y for r in pool)} {name}" for y, name in ((0, "real"), (1, "fake")))
    return (f"val: {fraction:g} of the training videos asked, drawn by {drawn_by} (seed {seed}); "
            f"{len(val)} of {len(pool)} moved ({share:.1%}: {per_class})")


def present(paths: Iterable[Path]) -> tuple[list[Path], list[Path]]:
    """``(existing, missing)`` of ``paths``, order kept."""
    found, missing = [], []
    for p in paths:
        (found if p.exists() else missing).append(p)
    return found, missing
