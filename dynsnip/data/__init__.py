"""From video files to the model's face clips: sampling, decoding, face cropping, datasets.

Needs the ``video`` extra (``pip install 'dynsnip[video]'``: PyAV, dlib-bin, numpy,
Pillow). Names are imported on first use, so ``import dynsnip.data`` (and the snippet
sampler, which needs only torch) works without the extra; using a name whose module needs
it raises an ImportError with the install command.

Modules: :mod:`~dynsnip.data.sampling` (which frames), :mod:`~dynsnip.data.decode`
(frame-exact PyAV decoding), :mod:`~dynsnip.data.faces` (detectors), :mod:`~dynsnip.data.mtcnn` (the MTCNN networks),
:mod:`~dynsnip.data.boxes` (box smoothing and margins), :mod:`~dynsnip.data.crop`, :mod:`~dynsnip.data.crop_policy` (the one crop policy),
:mod:`~dynsnip.data.transforms` (normalisation, flip), :mod:`~dynsnip.data.pipeline`
(video -> clip), :mod:`~dynsnip.data.manifest`, :mod:`~dynsnip.data.datasets`,
:mod:`~dynsnip.data.extraction` (write face regions once), :mod:`~dynsnip.data.face_folder` (read them through the crop policy), :mod:`~dynsnip.data.errors`,
:mod:`~dynsnip.data.assets` (bundled real footage), :mod:`~dynsnip.data.pseudo_fakes`
(self-blended video pseudo-fakes from real clips).
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "sample_snippets": "sampling",
    "VideoReader": "decode",
    "read_frames": "decode",
    "DlibFaceDetector": "faces",
    "MtcnnFaceDetector": "faces",
    "AutoFaceDetector": "faces",
    "Face": "faces",
    "as_detections": "faces",
    "MTCNN": "mtcnn",
    "create_face_detector": "faces",
    "detect_faces": "faces",
    "largest_box": "boxes",
    "fill_missing_boxes": "boxes",
    "snippet_boxes": "boxes",
    "snippet_face_boxes": "boxes",
    "track_face": "boxes",
    "box_iou": "boxes",
    "smooth_boxes": "boxes",
    "square_crop_box": "boxes",
    "crop_and_resize": "crop",
    "frames_to_tensor": "transforms",
    "random_horizontal_flip": "transforms",
    "FaceClip": "pipeline",
    "FaceClipLoader": "pipeline",
    "load_face_clip": "pipeline",
    "data_config_from_model": "pipeline",
    "ManifestEntry": "manifest",
    "read_manifest": "manifest",
    "write_manifest": "manifest",
    "check_entries": "manifest",
    "ManifestOverlapWarning": "manifest",
    "VideoDataset": "datasets",
    "FaceFramesDataset": "datasets",
    "list_frames": "datasets",
    "ExtractedFaces": "extraction",
    "FaceFolder": "face_folder",
    "extract_face_frames": "extraction",
    "VideoError": "errors",
    "VideoNotFoundError": "errors",
    "CorruptVideoError": "errors",
    "NoVideoStreamError": "errors",
    "UnseekableVideoError": "errors",
    "NoFaceError": "errors",
    "FrameGapError": "errors",
    "FrameFolderError": "errors",
    "FrameSequence": "datasets",
    "frame_sequence": "datasets",
    "StrayFrameFileWarning": "datasets",
    "LowFaceCoverageError": "errors",
    "SnippetCrops": "crop_policy",
    "snippet_crops": "crop_policy",
    "detection_frames": "crop_policy",
    "snippet_face_box": "boxes",
    "PseudoFakeGenerator": "pseudo_fakes",
    "bundled_videos": "assets",
    "bundled_video": "assets",
    "bundled_videos_dir": "assets",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
