"""Manifests of the standard DeepFake benchmarks, read from the trees users download.

One module per dataset; :func:`build_manifest` dispatches by name::

    from dynsnip.data.benchmarks import build_manifest
    manifest = build_manifest("ffpp", "/data/FaceForensics++", compression="c23")
    print(manifest.summary())          # rows per split, expected / found / missing per group
    manifest.write("ffpp_c23.csv")     # path,label,split,method,source,dataset

=================== ======================================================= ==========================
name                what                                                    options
=================== ======================================================= ==========================
``ffpp``            FaceForensics++, official splits (:mod:`.ffpp`)          compression, methods
``celebdf``         Celeb-DF v1 / v2, official test list (:mod:`.celebdf`)   version, val_fraction, seed
``dfdc``            DFDC parts, preview, public test set (:mod:`.dfdc`)      val_fraction, seed
``deeperforensics`` DeeperForensics-1.0 + FF++ reals (:mod:`.deeperforensics`) ffpp_root, variant
``wilddeepfake``    WildDeepfake frame folders (:mod:`.wilddeepfake`)        val_fraction, seed
=================== ======================================================= ==========================

Every row records where it came from in the manifest's ``dataset`` column (e.g.
``ffpp:c23``; :mod:`.provenance`), which ``dynsnip benchmark`` checks against its protocol.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from .celebdf import celebdf_manifest
from .deeperforensics import deeperforensics_manifest
from .dfdc import dfdc_manifest
from .ffpp import EXTRA_METHODS, PAPER_METHODS, ffpp_manifest, official_splits
from .layout import MANIFEST_COLUMNS, BenchmarkManifest, BenchmarkRow, Inventory, LayoutError
from .provenance import check_provenance, dataset_tag
from .wilddeepfake import wilddeepfake_manifest

__all__ = ["DATASETS", "build_manifest", "BenchmarkManifest", "BenchmarkRow", "Inventory", "LayoutError",
           "MANIFEST_COLUMNS", "PAPER_METHODS", "EXTRA_METHODS", "official_splits", "ffpp_manifest",
           "celebdf_manifest", "dfdc_manifest", "deeperforensics_manifest", "wilddeepfake_manifest",
           "dataset_tag", "check_provenance"]

DATASETS: dict[str, Callable[..., BenchmarkManifest]] = {
    "ffpp": ffpp_manifest,
    "celebdf": celebdf_manifest,
    "dfdc": dfdc_manifest,
    "deeperforensics": deeperforensics_manifest,
    "wilddeepfake": wilddeepfake_manifest,
}


def build_manifest(dataset: str, root: str | Path, **options: Any) -> BenchmarkManifest:
    """The manifest of ``dataset`` (a key of :data:`DATASETS`) at ``root``; ``options`` go to
    that dataset's reader.

    Raises:
        LayoutError: unknown dataset, a root that is not that dataset, a malformed layout file.
        TypeError: an option the reader does not take.
    """
    if dataset not in DATASETS:
        raise LayoutError(f"unknown dataset {dataset!r}; expected one of {sorted(DATASETS)}")
    if not Path(root).is_dir():
        raise LayoutError(f"dataset root {root} is not a folder")
    return DATASETS[dataset](root, **options)
