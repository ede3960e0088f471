"""Where segments begin and end: at the footage's cuts (``shots``) or every N seconds (``fixed``).

A fixed window straddles a cut and mixes two scenes into one vector; a segment that follows the
shots holds one scene. ``plan_segments`` is the rule, a pure function of a duration and cut
times (``shots`` finds the cuts):

- segments end at cuts;
- a shot longer than the segment length is split into equal pieces no longer than it (not a
  full window and a stub);
- a shot shorter than ``min_seconds`` (a sliver: a flash the detector let through, a cut
  closer than that to the start or end) joins the shot after it (the last one joins the one
  before), so a slideshow with a cut every frame gives segments of at least ``min_seconds``,
  never one per frame;
- with no cut left, the fixed-window plan itself (windows of the segment length, a last piece
  under ``min_seconds`` joined to the one before): a black screen, one long take or a short
  clip is cut exactly as a ``fixed`` store cuts it, so switching a store to shots re-embeds
  only the videos that have cuts.

No segment is ever empty; a clip shorter than everything is one segment.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from .sampling import SegmentPlan
from .sampling import plan_segments as fixed_plans

#: How a store cuts videos into segments (meta ``segmenter``). Stores from before shots are ``fixed``.
SEGMENTERS = ("shots", "fixed")
#: What `vsearch index` gives a new store.
DEFAULT_SEGMENTER = "shots"


def check_segmenter(mode: str) -> str:
    """``mode`` when it names a segmenter, else ``ValueError`` with the choices."""
    if mode not in SEGMENTERS:
        raise ValueError(f"unknown segmenter {mode!r}: use one of {', '.join(SEGMENTERS)}")
    return mode


def shot_bounds(duration: float, cuts: Iterable[float], min_seconds: float) -> list[float]:
    """``[0, cut, ..., duration]``: the cuts inside the video, each kept when the shot it ends is
    at least ``min_seconds`` long (greedy from the start), and the last shot likewise (else its
    cut is dropped and it joins the one before)."""
    inner = sorted({float(c) for c in cuts if math.isfinite(float(c)) and 0.0 < float(c) < duration})
    bounds = [0.0]
    for c in inner:
        if c - bounds[-1] >= min_seconds:
            bounds.append(c)
    if len(bounds) > 1 and duration - bounds[-1] < min_seconds:
        bounds.pop()
    return [*bounds, float(duration)]


def fixed_windows(duration: float, segment_seconds: float, min_seconds: float) -> list[tuple[float, float]]:
    """Windows of ``segment_seconds`` from 0; a last piece shorter than ``min_seconds`` joins the
    one before (the ``fixed`` rule of ``vsearch.video.sampling.plan_segments``, in seconds)."""
    n = max(1, math.ceil(duration / segment_seconds - 1e-9))
    edges = [float(min(k * segment_seconds, duration)) for k in range(n)] + [float(duration)]
    if n > 1 and duration - edges[-2] < min_seconds:
        del edges[-2]
    return list(zip(edges[:-1], edges[1:]))


def plan_segments(
    duration: float, cuts: Iterable[float], segment_seconds: float, min_seconds: float = 1.0
) -> list[tuple[float, float]]:
    """``(start, end)`` seconds of each segment of a ``duration`` s video with cuts at ``cuts``
    (seconds; those outside the video are ignored). See the module's rules. ``[]`` for a video
    of no duration."""
    if not segment_seconds > 0:
        raise ValueError(f"segment_seconds must be positive, got {segment_seconds}")
    if not (math.isfinite(duration) and duration > 0):
        return []
    min_seconds = max(0.0, float(min_seconds))
    bounds = shot_bounds(duration, cuts, min_seconds)
    if len(bounds) == 2:
        return fixed_windows(duration, segment_seconds, min_seconds)
    out: list[tuple[float, float]] = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        n = max(1, math.ceil((b - a) / segment_seconds - 1e-9))
        step = (b - a) / n
        out += [(a + k * step, a + (k + 1) * step if k < n - 1 else b) for k in range(n)]
    return out


def segment_plans(
    frame_times: np.ndarray, cuts: Iterable[float], segment_seconds: float, min_seconds: float = 1.0
) -> list[SegmentPlan]:
    """``plan_segments`` on a decoded video: each segment as the frames whose start lies in its
    range (``frame_times``: (N, 2) start/end seconds). A range no frame starts in is dropped
    (its time goes to the segment before), so every plan has frames. With no cut left the
    result is exactly the ``fixed`` plan of ``vsearch.video.sampling``."""
    times, starts, duration = _timeline(frame_times)
    n = len(times)
    if n == 0:
        return []
    t0 = float(times[0, 0])
    cuts = list(cuts)
    if len(shot_bounds(duration, cuts, min_seconds)) == 2:
        return fixed_plans(times, segment_seconds, min_seconds)
    edges = [_frame_at(starts, a) for a, _b in plan_segments(duration, cuts, segment_seconds, min_seconds)]
    edges = sorted(set(min(e, n) for e in edges) | {0}) + [n]
    plans = []
    for a, b in zip(edges[:-1], edges[1:]):
        if b > a:
            start_s, end_s = float(starts[a]), float(times[b - 1, 1] - t0)
            plans.append(SegmentPlan(len(plans), a, b, start_s, max(end_s, start_s)))
    return plans


def cut_frames(frame_times: np.ndarray, cuts: Iterable[float] | None) -> frozenset[int] | None:
    """The frames that start a new shot, for cut times in seconds (as ``segment_plans`` maps
    them: the first frame starting at or after the cut); None when the cuts are not known."""
    if cuts is None:
        return None
    _times, starts, _duration = _timeline(frame_times)
    return frozenset(_frame_at(starts, float(c)) for c in cuts)


def final_plans(
    frame_times: np.ndarray, cuts: Iterable[float], segment_seconds: float, min_seconds: float = 1.0
) -> list[SegmentPlan]:
    """The first plans of ``segment_plans(frame_times, all_cuts, ...)``, known from ``cuts``
    alone when those are every cut up to some point of the video and the later ones are not
    known yet (a scan still under way): the segments of each shot that ends at a kept cut. A
    shot's segments depend only on its two ends, and whether a cut is kept only on the cuts
    before it and the duration (``shot_bounds`` is greedy from the start), so these never
    change. ``[]`` while no cut is kept: the plan may still turn out to be the fixed one."""
    times, starts, duration = _timeline(frame_times)
    if len(times) == 0:
        return []
    cuts = list(cuts)
    bounds = shot_bounds(duration, cuts, max(0.0, float(min_seconds)))
    if len(bounds) == 2:
        return []
    edge = _frame_at(starts, bounds[-2])
    return [p for p in segment_plans(times, cuts, segment_seconds, min_seconds) if p.end_frame <= edge]


def _frame_at(starts: np.ndarray, t: float) -> int:
    """The first frame starting at or after ``t`` seconds (``starts``: from the first frame)."""
    return int(np.searchsorted(starts, t - 1e-6, side="left"))


def _timeline(frame_times) -> tuple[np.ndarray, np.ndarray, float]:
    """``(N, 2)`` start/end times, the starts from the first frame, and the duration."""
    times = np.asarray(frame_times, dtype=np.float64).reshape(-1, 2)
    if len(times) == 0:
        return times, np.zeros(0), 0.0
    t0 = float(times[0, 0])
    return times, times[:, 0] - t0, float(times[-1, 1] - t0)
