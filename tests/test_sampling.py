"""Segment plans and frame indices: pure functions, checked against hand-computed cases."""

import numpy as np
import pytest

from vsearch.video.sampling import (
    format_range,
    format_timestamp,
    frame_times_from_fps,
    jittered_indices,
    plan_segments,
    uniform_indices,
)


def plans_of(n, fps, seg=10.0, tail=1.0):
    return [
        (p.start_frame, p.end_frame, round(p.start_s, 3), round(p.end_s, 3))
        for p in plan_segments(frame_times_from_fps(n, fps), seg, tail)
    ]


def test_exact_multiple_of_segment_length():
    assert plans_of(300, 10) == [(0, 100, 0.0, 10.0), (100, 200, 10.0, 20.0), (200, 300, 20.0, 30.0)]


def test_last_short_segment_is_kept():
    # 25 s at 10 fps: two full segments and a 5 s tail.
    assert plans_of(250, 10) == [(0, 100, 0.0, 10.0), (100, 200, 10.0, 20.0), (200, 250, 20.0, 25.0)]


def test_tiny_tail_is_merged_into_previous_segment():
    # 20.3 s: the 0.3 s tail is below min_tail (1 s) and joins segment 2.
    assert plans_of(203, 10) == [(0, 100, 0.0, 10.0), (100, 203, 10.0, 20.3)]
    # With min_tail 0 it stands alone.
    assert plans_of(203, 10, tail=0.0)[-1] == (200, 203, 20.0, 20.3)


def test_video_shorter_than_a_segment_is_one_segment():
    assert plans_of(25, 10) == [(0, 25, 0.0, 2.5)]
    assert plans_of(1, 30) == [(0, 1, 0.0, 0.033)]


def test_variable_frame_rate_is_cut_by_time_not_frame_count():
    # 50 frames at 10 fps (5 s) then 200 frames at 40 fps (5 s): 10 s, cut at 5 s segments.
    t1 = np.arange(50) / 10.0
    t2 = 5.0 + np.arange(200) / 40.0
    starts = np.concatenate([t1, t2])
    ends = np.concatenate([t1 + 0.1, t2 + 0.025])
    plans = plan_segments(np.stack([starts, ends], 1), segment_seconds=5.0)
    assert [(p.start_frame, p.end_frame) for p in plans] == [(0, 50), (50, 250)]
    assert plans[1].start_s == pytest.approx(5.0) and plans[1].end_s == pytest.approx(10.0)


def test_timestamps_with_nonzero_start_are_relative():
    times = frame_times_from_fps(20, 10) + 3.5
    (p,) = plan_segments(times, 10.0)
    assert (p.start_s, p.end_s) == (0.0, pytest.approx(2.0))


def test_empty_and_invalid():
    assert plan_segments(np.zeros((0, 2))) == []
    with pytest.raises(ValueError):
        plan_segments(frame_times_from_fps(10, 10), segment_seconds=0)
    with pytest.raises(ValueError):
        frame_times_from_fps(10, 0.0)


def test_uniform_indices_match_the_reference_linspace_rule():
    assert uniform_indices(0, 300, 12) == np.linspace(0, 299, 12).astype(int).tolist()
    assert uniform_indices(100, 200, 4) == [100, 133, 166, 199]
    assert uniform_indices(0, 3, 6) == [0, 0, 0, 1, 1, 2]  # short segments repeat frames
    assert uniform_indices(5, 6, 3) == [5, 5, 5]
    with pytest.raises(ValueError):
        uniform_indices(4, 4, 3)


def test_jittered_indices_stay_in_range_are_sorted_and_vary():
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(200):
        idx = jittered_indices(10, 310, 12, rng)
        assert len(idx) == 12 and idx == sorted(idx)
        assert 10 <= idx[0] and idx[-1] < 310
        seen.add(tuple(idx))
    assert len(seen) > 50
    # Each end point moves by at most one interval (300 // 11 = 27 frames).
    assert all(t[0] - 10 <= 27 and 309 - t[-1] <= 27 for t in seen)


def test_formatting():
    assert format_timestamp(0) == "00:00"
    assert format_timestamp(75.9) == "01:15"
    assert format_timestamp(3725) == "1:02:05"
    assert format_range(10, 20) == "00:10–00:20"


@pytest.mark.parametrize("count", [2, 3, 5])
def test_jittered_indices_small_counts_stay_in_range(count):
    rng = np.random.default_rng(1)
    for n in range(count + 1, 40):
        for _ in range(50):
            idx = jittered_indices(0, n, count, rng)
            assert len(idx) == count and 0 <= idx[0] <= idx[-1] < n
