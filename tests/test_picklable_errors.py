"""dynsnip's exceptions survive pickling: worker processes send each video's failures back.

``dynsnip predict`` scores videos in worker processes; a video whose second face is tracked but
not scored carries a ``no_face`` error for that track in its result. Exceptions whose
``__init__`` takes more than a message could not be unpickled (``TypeError`` in the main
process), and the whole batch crashed with a traceback instead of reporting the videos.
"""
from __future__ import annotations

import inspect
import pickle
import threading

import pytest
import torch

from dynsnip.data import errors as video_errors
from dynsnip.data.pipeline import VideoTracks
from dynsnip.engine.divergence import NonFiniteLossError
from dynsnip.engine.failures import NonFiniteError
from dynsnip.engine.run_lock import RunFolderBusyError
from dynsnip.hub import errors as hub_errors

VIDEO_ERRORS = sorted((cls for _, cls in inspect.getmembers(video_errors, inspect.isclass)
                       if issubclass(cls, video_errors.VideoError)), key=lambda cls: cls.__name__)
HUB_ERRORS = sorted((cls for _, cls in inspect.getmembers(hub_errors, inspect.isclass)
                     if issubclass(cls, hub_errors.ModelLoadError)), key=lambda cls: cls.__name__)


def round_trip(error: BaseException) -> BaseException:
    return pickle.loads(pickle.dumps(error))


def same(a: BaseException, b: BaseException) -> None:
    assert type(a) is type(b)
    assert str(a) == str(b) and a.args == b.args
    def state(error: BaseException) -> dict:  # exceptions compare by identity: by their repr here
        return {k: repr(v) if isinstance(v, BaseException) else v for k, v in error.__dict__.items()}

    assert state(a) == state(b)


@pytest.mark.parametrize("cls", VIDEO_ERRORS, ids=lambda cls: cls.__name__)
def test_every_video_error_round_trips(cls):
    if cls is video_errors.LowFaceCoverageError:
        error = cls("clip.mp4", 0.25, 0.5, 8, detector="auto")
        assert round_trip(error).coverage == 0.25 and round_trip(error).minimum == 0.5
    else:
        error = cls("clip.mp4", "what was wrong; what was expected")
    copy = round_trip(error)
    same(error, copy)
    assert copy.reason == cls.reason and copy.path == "clip.mp4"


@pytest.mark.parametrize("cls", HUB_ERRORS, ids=lambda cls: cls.__name__)
def test_every_model_load_error_round_trips_with_its_file_name(cls):
    error = cls("the repo has no model.safetensors", "owner/name", "model.safetensors", original=KeyError("x"))
    copy = round_trip(error)
    same(error, copy)
    assert copy.filename == "model.safetensors" and copy.source == "owner/name"
    # a cause that cannot be pickled travels as its text instead of failing the whole message
    error.original = RuntimeError(threading.Lock())
    assert round_trip(error).original == repr(error.original)


def test_engine_errors_round_trip(tmp_path):
    for error in (NonFiniteError("non_finite_output", "the model gave NaN"),
                  NonFiniteLossError("loss is NaN", epoch=2, step=7, clips=("a.mp4",)),
                  RunFolderBusyError(tmp_path)):
        same(error, round_trip(error))


def test_a_video_result_with_an_unscored_track_crosses_processes():
    """What a predict worker returns for a video whose second face leaves early."""
    failure = video_errors.NoFaceError("two_people.mp4", "track 1: no face in the frames looked at")
    result = VideoTracks(tracks=[], clips={}, failures={1: failure}, frame_indices=torch.zeros(1, 4, dtype=torch.int64),
                         num_frames=60, fps=25.0, frames_looked_at=15)
    copy = round_trip(result)
    same(failure, copy.failures[1])
