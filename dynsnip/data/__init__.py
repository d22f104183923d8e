"""From video files to the model's face clips: sampling, decoding, face cropping, datasets.

Needs the ``video`` extra (``pip install 'dynsnip[video]'``: PyAV, dlib-bin, numpy,
Pillow). Names are imported on first use, so ``import dynsnip.data`` (and the snippet
sampler, which needs only torch) works without the extra; using a name whose module needs
it raises an ImportError with the install command.

Modules: :mod:`~dynsnip.data.sampling` (which frames), :mod:`~dynsnip.data.decode`
(frame-exact PyAV decoding), :mod:`~dynsnip.data.faces` (finding, following and cropping
faces: detectors, boxes, the one crop policy, extraction to folders and reading them back),
:mod:`~dynsnip.data.transforms` (normalisation, flip), :mod:`~dynsnip.data.pipeline`
(video -> clip), :mod:`~dynsnip.data.manifest`, :mod:`~dynsnip.data.datasets`,
:mod:`~dynsnip.data.errors`, :mod:`~dynsnip.data.assets` (bundled real footage),
:mod:`~dynsnip.data.pseudo_fakes` (self-blended video pseudo-fakes from real clips).
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "sample_snippets": "sampling",
    "VideoReader": "decode",
    "read_frames": "decode",
    "DlibFaceDetector": "faces.detectors",
    "MtcnnFaceDetector": "faces.detectors",
    "AutoFaceDetector": "faces.detectors",
    "BlazeFaceDetector": "faces.detectors",
    "BlazeFace": "faces.blazeface",
    "Face": "faces.detectors",
    "as_detections": "faces.detectors",
    "MTCNN": "faces.mtcnn",
    "create_face_detector": "faces.detectors",
    "detect_faces": "faces.detectors",
    "largest_box": "faces.boxes",
    "fill_missing_boxes": "faces.boxes",
    "snippet_boxes": "faces.boxes",
    "snippet_face_boxes": "faces.boxes",
    "track_face": "faces.boxes",
    "box_iou": "faces.boxes",
    "smooth_boxes": "faces.boxes",
    "square_crop_box": "faces.boxes",
    "crop_and_resize": "faces.crop",
    "frames_to_tensor": "transforms",
    "random_horizontal_flip": "transforms",
    "FaceClip": "pipeline",
    "FaceClipLoader": "pipeline",
    "VideoTracks": "pipeline",
    "FaceTrack": "faces.tracks",
    "link_tracks": "faces.tracks",
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
    "ExtractedFaces": "faces.extraction",
    "FaceFolder": "faces.face_folder",
    "extract_face_frames": "faces.extraction",
    "VideoError": "errors",
    "VideoNotFoundError": "errors",
    "CorruptVideoError": "errors",
    "NoVideoStreamError": "errors",
    "UnseekableVideoError": "errors",
    "NoFaceError": "errors",
    "FrameGapError": "errors",
    "TooShortVideoError": "errors",
    "FrameFolderError": "errors",
    "FrameSequence": "datasets",
    "frame_sequence": "datasets",
    "StrayFrameFileWarning": "datasets",
    "LowFaceCoverageError": "errors",
    "FrameSizeChangeError": "errors",
    "IncompleteFolderError": "errors",
    "FaceFolderError": "errors",
    "SnippetCrops": "faces.crop_policy",
    "snippet_crops": "faces.crop_policy",
    "detection_frames": "faces.crop_policy",
    "snippet_face_box": "faces.boxes",
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
