"""Frame-exact decoding with PyAV, and the bad-file cases."""
from __future__ import annotations

import os

import av
import numpy as np
import pytest
from video_fixtures import (  # noqa: F401  (gop_video is a fixture)
    RAW_H264,
    carphone,
    decode_all,
    encode,
    gop_video,
    two_people,
    write_audio_only,
    write_text_as_mp4,
    write_cut_before_its_index,
    write_cut_mid_gop,
    write_trimmed_with_edit_list,
    write_truncated_fragmented_mp4,
    write_truncated_mp4,
)

from dynsnip.data.decode import mp4_cut_short
from dynsnip.data import (
    CorruptVideoError,
    NoVideoStreamError,
    UnseekableVideoError,
    VideoError,
    VideoNotFoundError,
    VideoReader,
    read_frames,
    sample_snippets,
)


def assert_same_frames(got, reference, indices):
    assert len(got) == len(indices)
    for array, index in zip(got, indices):
        assert (array == reference[index]).all(), f"frame {index} differs from the sequential decode"


def test_metadata_of_a_real_clip():
    with VideoReader(carphone()) as video:
        assert video.num_frames == 120
        assert video.size == (176, 144)
        assert video.fps == pytest.approx(30000 / 1001)
        assert video.keyframes == [0]
        assert video.timestamp(30) == pytest.approx(30 * 1001 / 30000)


def test_snippets_equal_a_sequential_decode_bit_for_bit():
    reference = decode_all(carphone())
    indices = sample_snippets(120, 8, 4).flatten().tolist()
    assert_same_frames(read_frames(carphone(), indices), reference, indices)


def test_seeking_in_a_many_keyframe_video_with_b_frames(gop_video):
    reference = decode_all(gop_video)
    with VideoReader(gop_video) as video:
        assert video.num_frames == 120
        assert video.keyframes == list(range(0, 120, 12))
        # any order, repeats, frames on both sides of keyframes
        indices = [113, 2, 47, 48, 11, 12, 13, 100, 2, 59, 60, 0, 119]
        assert_same_frames(video.read(indices), reference, indices)
        train = sample_snippets(120, 4, 4, train=True).flatten().tolist()
        assert_same_frames(video.read(train), reference, train)


@pytest.mark.parametrize("name, codec", [("h264_bframes.ts", "libx264"), ("mpeg2_bframes.mpg", "mpeg2video"),
                                         ("mpeg2_bframes.ts", "mpeg2video")])
def test_mpeg_program_and_transport_streams_are_read_frame_exact(tmp_path, name, codec):
    """In a TS with B-frames FFmpeg's seek to frame 0 lands on the second keyframe (frames 0-11 could not be
    read: the video failed as corrupt); in an MPEG-PS frames decoded after a seek carry the next frame's
    timestamp (frame 25 read as 24, silently). These containers are read front to back, never by seeking."""
    path = encode(tmp_path / name, decode_all(carphone())[:48], fps=30, gop=12, bframes=2, codec=codec)
    reference = decode_all(path)
    with VideoReader(path) as video:
        assert video.sequential and video.num_frames == len(reference) == 48
        indices = [25, 26, 27, 28, 0, 5, 11, 12, 31, 32, 33, 34, 47, 2]
        assert_same_frames(video.read(indices), reference, indices)
        assert_same_frames(read_frames(path, [12, 13, 14, 15]), reference, [12, 13, 14, 15])


def test_a_video_cut_inside_a_group_of_pictures_starts_at_its_first_keyframe(tmp_path, gop_video):
    """Cut with stream copy and no edit list: the packets before the first keyframe decode to nothing (a
    player starts at the keyframe). The index starts there too: the MP4 opened as corrupt before, a TS
    counted frames that could not be read."""
    for name in ("cut.mp4", "cut.ts"):
        path = write_cut_mid_gop(gop_video, tmp_path / name, skip=5)
        reference = decode_all(path)
        with VideoReader(path) as video:
            assert video.leading_packets > 0 and video.num_frames == len(reference)
            indices = [0, 1, len(reference) - 1, 7, 30]
            assert_same_frames(video.read(indices), reference, indices)


def test_reads_decode_only_the_gops_they_need(gop_video):
    with VideoReader(gop_video) as video:
        video.read([100, 101, 102, 103])  # GOP 96..107: one seek, frames 96..103
        assert video.seeks == 1
        assert video.frames_decoded <= 12
    with VideoReader(carphone()) as video:  # one keyframe: snippets in order reuse the decoder
        video.read([5, 6, 7, 8, 20, 21, 22, 23])
        assert video.seeks == 1
        assert video.frames_decoded == 24


def test_iter_frames_is_sequential():
    reference = decode_all(two_people())
    with VideoReader(two_people()) as video:
        frames = list(video.iter_frames(3, 7))
    assert [i for i, _ in frames] == [3, 4, 5, 6]
    assert all((array == reference[i]).all() for i, array in frames)


def test_index_out_of_range_names_the_valid_range():
    with VideoReader(two_people()) as video, pytest.raises(IndexError, match="has 9 frames"):
        video.read([3, 9])


def test_text_file_named_mp4_is_corrupt(tmp_path):
    path = write_text_as_mp4(tmp_path / "notes.mp4")
    with pytest.raises(CorruptVideoError, match="not a readable video container") as err:
        VideoReader(path)
    assert err.value.path == str(path) and str(path) in str(err.value)
    assert err.value.reason == "corrupt"


def test_truncated_mp4_is_corrupt(tmp_path):
    path = write_truncated_mp4(carphone(), tmp_path / "cut.mp4")
    with pytest.raises(CorruptVideoError, match="lists 120 frames but only"):
        VideoReader(path)


def test_an_mp4_cut_before_its_index_is_named_as_cut_short(tmp_path):
    path = write_cut_before_its_index(carphone(), tmp_path / "cut.mp4")
    with pytest.raises(CorruptVideoError, match="MP4/MOV file cut short: .* inside its 'mdat' box.* no 'moov' index") as err:
        VideoReader(path)
    assert err.value.reason == "corrupt" and "copy or download it again" in str(err.value)
    # a text file or a whole MP4 is not "cut short"
    assert mp4_cut_short(write_text_as_mp4(tmp_path / "notes.mp4")) is None
    assert mp4_cut_short(carphone()) is None


def test_audio_only_file_has_no_video_stream(tmp_path):
    path = write_audio_only(tmp_path / "speech.wav")
    with pytest.raises(NoVideoStreamError, match="no video stream.*audio") as err:
        VideoReader(path)
    assert err.value.reason == "no_video_stream"


def test_raw_h264_stream_cannot_be_sought():
    with pytest.raises(UnseekableVideoError, match="no timestamps.*remux") as err:
        VideoReader(RAW_H264)
    assert isinstance(err.value, VideoError) and err.value.reason == "unseekable"


def test_missing_file(tmp_path):
    with pytest.raises(VideoNotFoundError, match="no such file"):
        VideoReader(tmp_path / "nope.mp4")


def test_a_folder_or_a_fifo_is_named_for_what_it_is_and_never_opened(tmp_path):
    with pytest.raises(VideoNotFoundError, match="is a directory, expected a video file"):
        VideoReader(tmp_path)
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)  # opening it for reading would block this test forever
    with pytest.raises(VideoNotFoundError, match=r"is not a regular file \(a FIFO, a named pipe\)"):
        VideoReader(fifo)


@pytest.mark.parametrize("stored_turn, display_rotation", [(1, -90), (-1, 90), (2, 180)])
def test_frames_come_out_as_the_display_rotation_shows_them(tmp_path, stored_turn, display_rotation):
    """A phone's portrait clip: the frames stored turned, the container's display matrix turning them
    back. Read frames (and ``size``) are the upright ones; ``apply_rotation=False`` gives the stored."""
    upright = decode_all(carphone())[:6]  # 176x144, a face
    stored = [np.ascontiguousarray(np.rot90(f, stored_turn)) for f in upright]
    path = encode(tmp_path / "turned.mp4", stored, display_rotation=display_rotation)
    with VideoReader(path) as video:
        assert video.rotation == display_rotation % 360 == video.stored_rotation
        assert video.size == (176, 144)
        frames = video.read(range(6))
        assert "rotation=" in repr(video)
    assert frames.shape == (6, 144, 176, 3)
    error = np.abs(frames.astype(float) - np.stack(upright)).mean()
    wrong_way = np.abs(np.rot90(frames, 2, axes=(1, 2)).astype(float) - np.stack(upright)).mean()
    assert error < 6 < wrong_way  # the re-encoding's loss only, not the face upside down
    with VideoReader(path, apply_rotation=False) as video:
        assert video.rotation == 0 and video.stored_rotation == display_rotation % 360
        assert video.read([0]).shape[1:3] == stored[0].shape[:2]
    assert read_frames(path, [5]).shape == (1, 144, 176, 3)


def test_an_unrotated_clip_reads_as_before():
    with VideoReader(carphone()) as video:
        assert video.rotation == video.stored_rotation == 0 and "rotation" not in repr(video)


@pytest.mark.parametrize("display_rotation", [90, 180, -90, 0])
def test_a_mirroring_display_matrix_fails_closed(tmp_path, display_rotation):
    """A flipped recording (a mirror, with or without a rotation: 180 + mirror reads as rotation 0)
    is not applied: the face would be upside down or mirrored, so the video fails, naming why."""
    path = encode(tmp_path / "mirrored.mp4", decode_all(carphone())[:2], display_rotation=display_rotation,
                  display_hflip=True)
    with pytest.raises(CorruptVideoError, match="display matrix mirrors the picture"):
        VideoReader(path)


def test_a_display_rotation_off_the_right_angles_fails_closed(tmp_path):
    path = encode(tmp_path / "tilted.mp4", decode_all(carphone())[:2], display_rotation=45)
    with pytest.raises(CorruptVideoError, match="display rotation is 45 degrees; expected a multiple of 90"):
        VideoReader(path)


def test_an_empty_file_is_named_as_such(tmp_path):
    path = tmp_path / "interrupted_copy.mp4"
    path.write_bytes(b"")
    with pytest.raises(CorruptVideoError, match=r"empty file \(0 bytes\)"):
        VideoReader(path)


def test_a_cut_in_time_is_a_frame_gap_for_snippets_that_span_it(tmp_path):
    """Frames 0-11, then a jump of 100 frame intervals (a stretch cut out, a pause), then 12 more:
    consecutive in the file, not in time. A snippet across the jump fails (it would be scored as
    motion); snippets on either side are fine; a dropped frame (a 2x step) is not a cut."""
    from dynsnip.data.decode import MAX_FRAME_STEP
    from dynsnip.data.errors import FrameGapError

    frames = decode_all(carphone())[:26]
    pts = list(range(12)) + list(range(112, 124)) + [125, 126]  # a 100-interval cut, then a 2x step (frame dropped)
    path = encode(tmp_path / "cut.mp4", frames, fps=25, pts=pts)
    with VideoReader(path) as video:
        assert video.frame_interval == pytest.approx(1 / 25)
        assert video.time_gaps() == [12] and video.time_gaps(12) == [] and 2 < MAX_FRAME_STEP < 100
        video.check_consecutive(np.array([[0, 1, 2, 3], [12, 13, 14, 15], [22, 23, 24, 25]]))
        with pytest.raises(FrameGapError, match=r"snippet 1 \(frames 10-13\) spans a jump in time: frame 12 comes "
                                                r"4\.040 s after frame 11, where the video's frames are 40 ms apart") as err:
            video.check_consecutive(np.array([[0, 1, 2, 3], [10, 11, 12, 13]]))
        assert err.value.reason == "frame_gap"
    # the clip loader (predict, evaluate on videos): U = 1 takes the middle snippet, frames 11-14, across the cut
    from dynsnip.data import FaceClipLoader

    with pytest.raises(FrameGapError, match="jump in time"):
        FaceClipLoader(num_snippets=1, snippet_len=4, size=(32, 32), face_detector=None)(path)


def test_extract_faces_records_the_cut_and_its_folder_refuses_snippets_across_it(tmp_path):
    """The frame folder numbers its frames 0, 1, 2, ... whatever their times: faces.json keeps the
    cut (time_gaps), and a training / evaluation snippet across it fails as in the video."""
    from dynsnip.data import FaceFramesDataset, extract_face_frames
    from dynsnip.data.errors import FrameGapError

    frames = decode_all(carphone())[:26]
    path = encode(tmp_path / "cut.mp4", frames, fps=25, pts=list(range(12)) + list(range(112, 126)))
    folder = extract_face_frames(path, tmp_path / "faces", face_detector="none").out_dir
    import json

    assert json.loads((folder / "faces.json").read_text())["time_gaps"] == [12]
    from dynsnip.data.manifest import ManifestEntry

    rows = [ManifestEntry(path=folder, label=0)]
    with pytest.raises(FrameGapError, match=r"cut or paused between frames 11 and 12"):
        FaceFramesDataset(rows, num_snippets=1, snippet_len=4, size=(32, 32))[0]  # the middle snippet: 11-14
    pixels, _ = FaceFramesDataset(rows, num_snippets=2, snippet_len=4, size=(32, 32))[0]  # 0-3 and 22-25: no cut
    assert pixels.shape[1] == 8


def test_a_trimmed_video_has_the_frames_a_player_shows(tmp_path):
    """A lossless cut (edit list) keeps pre-roll packets that are decoded but never shown: they are
    not frames (they were counted, and frame 0 then 'could not be decoded')."""
    path = write_trimmed_with_edit_list(carphone(), tmp_path / "trimmed.mp4")
    shown = decode_all(path)
    with av.open(str(path)) as container:
        assert sum(p.is_discard for p in container.demux(video=0) if p.size) == 5  # the fixture is what it says
    with VideoReader(path) as video:
        assert video.num_frames == len(shown)
        picked = [0, 1, 40, len(shown) - 1]
        for i, frame in zip(picked, video.read(picked)):
            np.testing.assert_array_equal(frame, shown[i])


def test_an_interrupted_fragmented_recording_is_corrupt(tmp_path):
    """No frame count in a fragmented MP4's header: the cut-off last packet (flagged corrupt) tells."""
    path = write_truncated_fragmented_mp4(carphone(), tmp_path / "cut.mp4")
    with pytest.raises(CorruptVideoError, match="truncated: the file ends inside the packet of its last frame"):
        VideoReader(path)


def test_of_two_video_streams_the_one_a_player_shows_is_read(tmp_path):
    """A small preview stream written first (phones, editors) is not the video: the one with the
    most pixels is, as the ffmpeg command picks it."""
    faces = decode_all(carphone())[:12]
    grey = np.full((64, 64, 3), 128, np.uint8)
    path = tmp_path / "two_streams.mkv"
    with av.open(str(path), "w") as out:
        small = out.add_stream("libx264", rate=25)
        small.width, small.height, small.pix_fmt = 64, 64, "yuv420p"
        main = out.add_stream("libx264", rate=25)
        main.width, main.height, main.pix_fmt = faces[0].shape[1], faces[0].shape[0], "yuv420p"
        for array in faces:
            for stream, picture in ((small, grey), (main, array)):
                for packet in stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")):
                    out.mux(packet)
        for stream in (small, main):
            for packet in stream.encode(None):
                out.mux(packet)
    with VideoReader(path) as video:
        assert video.size == (faces[0].shape[1], faces[0].shape[0]) and video.num_frames == len(faces)
        frame = video.read([5])[0]
    assert np.abs(frame.astype(int) - faces[5].astype(int)).mean() < 8  # the face video, not the grey stream
