"""Snippet sampling: U snippets of T consecutive frames spread uniformly over the video."""
from __future__ import annotations

import pytest
import torch

from dynsnip.data import sample_snippets


def starts(indices: torch.Tensor) -> list[int]:
    return indices[:, 0].tolist()


def test_eval_snippets_sit_in_the_middle_of_equal_segments():
    # 120 frames, U=8: segments of 15 frames starting at 0, 15, ...; slack 11 -> offset 5
    indices = sample_snippets(120, 8, 4)
    assert starts(indices) == [5, 20, 35, 50, 65, 80, 95, 110]
    assert indices[0].tolist() == [5, 6, 7, 8]
    assert indices[-1].tolist() == [110, 111, 112, 113]


def test_eval_with_unequal_segments_and_no_slack():
    # 16 frames, U=4, T=4: the snippets tile the video exactly
    assert sample_snippets(16, 4, 4).flatten().tolist() == list(range(16))
    # 18 frames, U=4: segments start at 0, 4, 9, 13 (floor(u*18/4)), shortest is 4 frames
    assert starts(sample_snippets(18, 4, 4)) == [0, 4, 9, 13]
    assert starts(sample_snippets(299, 4, 4)) == [35, 109, 184, 259]  # 299 // 4 = 74, offset 35


def test_eval_is_deterministic():
    assert torch.equal(sample_snippets(750, 8, 4), sample_snippets(750, 8, 4))


def test_train_offsets_are_random_inside_their_segment():
    n, u, t = 100, 4, 4  # segments of 25 frames: starts in [25u, 25u + 21]
    seen = set()
    for seed in range(40):
        indices = sample_snippets(n, u, t, train=True, generator=torch.Generator().manual_seed(seed))
        for k, start in enumerate(starts(indices)):
            assert 25 * k <= start <= 25 * k + 21
        assert torch.equal(indices, indices[:, :1] + torch.arange(t))  # consecutive frames
        seen.add(tuple(starts(indices)))
    assert len(seen) > 30  # offsets really vary between draws
    again = sample_snippets(n, u, t, train=True, generator=torch.Generator().manual_seed(3))
    assert torch.equal(again, sample_snippets(n, u, t, train=True, generator=torch.Generator().manual_seed(3)))


def test_short_video_overlaps_snippets_evenly():
    # 9 frames cannot hold 4 x 4 separate frames: starts spread over [0, 5]
    assert starts(sample_snippets(9, 4, 4)) == [0, 2, 3, 5]
    assert starts(sample_snippets(9, 8, 4)) == [0, 1, 1, 2, 3, 4, 4, 5]
    # training has no slack there: same as eval
    assert torch.equal(sample_snippets(9, 4, 4, train=True), sample_snippets(9, 4, 4))


def test_a_video_shorter_than_a_snippet_is_a_failure_not_repeated_frames():
    """Fewer than T frames hold no snippet: filling one by repeating frames would show the model a
    standstill the video does not have. Both policies fail, naming the video and the counts."""
    from dynsnip.data.errors import TooShortVideoError

    for policy in ("overlap", "error"):
        with pytest.raises(TooShortVideoError, match=r"clip\.mp4: 3 frame\(s\), fewer than the T = 4") as err:
            sample_snippets(3, 2, 4, short_video=policy, source="clip.mp4")
        assert err.value.reason == "too_short"
    with pytest.raises(TooShortVideoError, match="1 frame"):
        sample_snippets(1, 3, 2)
    assert sample_snippets(4, 3, 4).tolist() == [[0, 1, 2, 3]] * 3  # exactly one snippet's frames: fine


def test_short_video_error_policy_and_bad_arguments():
    with pytest.raises(ValueError, match="9 frames, fewer than the 4 x 4 = 16"):
        sample_snippets(9, 4, 4, short_video="error")
    assert starts(sample_snippets(16, 4, 4, short_video="error")) == [0, 4, 8, 12]
    with pytest.raises(ValueError, match="no frames"):
        sample_snippets(0, 4, 4)
    with pytest.raises(ValueError, match="num_snippets and snippet_len"):
        sample_snippets(10, 0, 4)
    with pytest.raises(ValueError, match="short_video must be"):
        sample_snippets(5, 4, 4, short_video="loop")


def test_invariants_over_many_lengths():
    for n in range(1, 70):
        for u in (1, 2, 4, 8):
            for t in (1, 4, 5):
                for train in (False, True):
                    if n < t:
                        continue  # too short (test above)
                    indices = sample_snippets(n, u, t, train=train)
                    assert indices.shape == (u, t)
                    assert 0 <= indices.min() and indices.max() < n
                    assert starts(indices) == sorted(starts(indices))
                    assert torch.equal(indices, indices[:, :1] + torch.arange(t))  # T consecutive frames
                    if n >= u * t:  # no frame used twice
                        assert len(set(indices.flatten().tolist())) == u * t


def test_evaluation_snippets_align_to_the_detectors_frames_inside_their_segments():
    """align=k > T: each evaluation snippet is the one nearest its segment's middle that holds a
    multiple of k; it never leaves its segment; training and k <= T are unchanged."""
    for n in (40, 64, 120, 301, 1000):
        plain = sample_snippets(n, 8, 4)
        aligned = sample_snippets(n, 8, 4, align=16)
        segment = n // 8
        for u, (a, p) in enumerate(zip(aligned.tolist(), plain.tolist())):
            first = u * n // 8
            assert first <= a[0] and a[-1] < first + segment  # inside its segment
            if segment - 4 >= 15:  # room for a multiple of 16 in every segment
                assert any(i % 16 == 0 for i in a)
            if any(i % 16 == 0 for i in p):
                assert a == p  # already holds one: stays put
    assert torch.equal(sample_snippets(120, 8, 4, align=4), sample_snippets(120, 8, 4))
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    assert torch.equal(sample_snippets(120, 4, 4, train=True, generator=g1, align=16),
                       sample_snippets(120, 4, 4, train=True, generator=g2))


def test_train_offsets_reach_every_start_of_each_segment():
    """Segments are a frame longer than the shortest where U does not divide N: training draws
    over each segment's own starts, the last included, and never crosses into the next segment
    (a draw from the shortest segment's slack never started a snippet on that last frame)."""
    n, u, t = 18, 4, 4  # segments [0, 4), [4, 9), [9, 13), [13, 18): lengths 4, 5, 4, 5
    seen = [set() for _ in range(u)]
    for seed in range(200):
        indices = sample_snippets(n, u, t, train=True, generator=torch.Generator().manual_seed(seed))
        for k, start in enumerate(starts(indices)):
            seen[k].add(start)
    assert seen == [{0}, {4, 5}, {9}, {13, 14}]
    n, u, t = 103, 4, 4  # segments [0, 25), [25, 51), [51, 77), [77, 103): 25, 26, 26, 26 frames
    seen = [set() for _ in range(u)]
    for seed in range(2000):
        indices = sample_snippets(n, u, t, train=True, generator=torch.Generator().manual_seed(seed))
        for k, start in enumerate(starts(indices)):
            seen[k].add(start)
    assert seen == [set(range(0, 22)), set(range(25, 48)), set(range(51, 74)), set(range(77, 100))]
