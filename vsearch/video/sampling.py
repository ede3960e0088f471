"""Which frames of a video get embedded: segments in time, frame indices inside a segment.

Pure functions of frame timestamps, so they are tested without decoding anything and the same
plan is used by indexing, training and evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import DEFAULT_MIN_TAIL_SECONDS, DEFAULT_SEGMENT_SECONDS


@dataclass(frozen=True)
class SegmentPlan:
    """One segment: frames ``[start_frame, end_frame)`` covering ``[start_s, end_s)`` seconds."""

    index: int
    start_frame: int
    end_frame: int
    start_s: float
    end_s: float

    @property
    def num_frames(self) -> int:
        return self.end_frame - self.start_frame


def frame_times_from_fps(num_frames: int, fps: float) -> np.ndarray:
    """(N, 2) start/end times for a constant-rate video, used when the container has no index."""
    if num_frames <= 0:
        return np.zeros((0, 2))
    if not fps or not np.isfinite(fps) or fps <= 0:
        raise ValueError(f"cannot time {num_frames} frames without a positive frame rate (got {fps!r})")
    starts = np.arange(num_frames, dtype=np.float64) / fps
    return np.stack([starts, starts + 1.0 / fps], axis=1)


def plan_segments(
    frame_times: np.ndarray,
    segment_seconds: float = DEFAULT_SEGMENT_SECONDS,
    min_tail_seconds: float = DEFAULT_MIN_TAIL_SECONDS,
) -> list[SegmentPlan]:
    """Cut a video into fixed-length segments by presentation time.

    ``frame_times`` is (N, 2): each frame's start and end time in seconds, as decord reports
    them. Cutting by time rather than frame count keeps segment boundaries right for variable
    frame rate video. The last segment keeps whatever is left, unless it is shorter than
    ``min_tail_seconds``; then it is merged into the previous one (a 0.03 s segment of one frame
    is noise, not a search result). A video shorter than one segment is one segment.
    """
    if segment_seconds <= 0:
        raise ValueError(f"segment_seconds must be positive, got {segment_seconds}")
    times = np.asarray(frame_times, dtype=np.float64).reshape(-1, 2)
    n = len(times)
    if n == 0:
        return []
    t0 = float(times[0, 0])
    starts = times[:, 0] - t0
    # Bucket of each frame; timestamps are sorted by decode order, so make the buckets monotone
    # (a stray out-of-order pts must not open a segment that goes backwards).
    bucket = np.maximum.accumulate(np.floor(starts / segment_seconds + 1e-9).astype(np.int64))
    cuts = [0] + [int(i) for i in np.flatnonzero(np.diff(bucket)) + 1] + [n]
    bounds = list(zip(cuts[:-1], cuts[1:]))
    if len(bounds) > 1:
        tail_start, tail_end = bounds[-1]
        tail_len = float(times[tail_end - 1, 1] - times[tail_start, 0])
        if tail_len < min_tail_seconds:
            bounds[-2] = (bounds[-2][0], tail_end)
            bounds.pop()
    plans = []
    for i, (a, b) in enumerate(bounds):
        start_s = float(times[a, 0] - t0)
        end_s = float(times[b - 1, 1] - t0)
        plans.append(SegmentPlan(i, a, b, start_s, max(end_s, start_s)))
    return plans


def uniform_indices(start: int, end: int, count: int) -> list[int]:
    """``count`` frames spread evenly over ``[start, end)``, first and last included.

    Same rule as CLIP-ViP's and CLIP4Clip's test-time sampling (``np.linspace(0, n-1, T)``
    truncated to int). Segments shorter than ``count`` frames repeat frames.
    """
    if end <= start:
        raise ValueError(f"empty frame range [{start}, {end})")
    if count <= 0:
        raise ValueError(f"count must be positive, got {count}")
    return [int(i) for i in np.linspace(start, end - 1, count).astype(np.int64)]


def jittered_indices(start: int, end: int, count: int, rng: np.random.Generator) -> list[int]:
    """Training-time sampling of CLIP-ViP (``get_sample_idx`` with ``sample_jitter``).

    Both end points move by up to one sampling interval, then the frames are spread evenly
    between them: uniform coverage with a different phase every epoch.
    """
    n = end - start
    if n <= 0:
        raise ValueError(f"empty frame range [{start}, {end})")
    if count <= 1 or n <= count:
        return uniform_indices(start, end, count)
    interval = n // (count - 1)
    lo = int(rng.integers(0, min(interval, n - 1) + 1))  # with 2 frames the interval is the whole range
    hi = int(rng.integers(max(n - 1 - interval, lo), n))
    return [start + int(i) for i in np.linspace(lo, hi, count).astype(np.int64)]


def format_timestamp(seconds: float) -> str:
    """``mm:ss`` (``h:mm:ss`` past an hour), as shown in search results."""
    total = int(max(seconds, 0.0))
    h, rem = divmod(total, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def format_range(start_s: float, end_s: float) -> str:
    return f"{format_timestamp(start_s)}–{format_timestamp(end_s)}"
