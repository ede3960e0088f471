"""The moment of a hit: its segment widened to the neighbours that match the query as well.

A segment is a unit of indexing, not of meaning: a scene that straddles a segment boundary (or,
with segments that follow shots, a scene cut into several shots) scores about as well in each of
its segments. After ranking, each shown hit's segment is widened to the contiguous run of its
video's segments whose cosine with the same query vector is close enough to the hit segment's
own. Scores come from the stored (float16) vectors: nothing is decoded and no model runs, one
SQL read of the segments near the shown hits.

Close enough is half-way down the hit's peak: a neighbour joins when its score is at least
``best - max(MARGIN_FLOOR, MARGIN_SHARE * (best - baseline))``, where ``baseline`` is the
median score of the segments around the hit (what "not this" scores in this video). The width
of the score profile at half its height above the baseline, like a peak's FWHM; relative, so it
holds for any model's cosine scale. ``MARGIN_FLOOR`` keeps a flat profile (a video that is all
one scene) from stopping at noise. A shot cut (stored by the shots segmenter) ends a moment:
across a cut the neighbour is another shot, and one that scores as well is usually a similar
scene, not more of this one; within a shot, the pieces a long shot was split into are joined.

Chosen on ``vsearch eval moments`` (12 films of 4 scenes, 48 captions; docs/search-at-scale.md,
"Moments"): mean temporal IoU of the best hit in the right film, segment -> moment. Fixed
windows, CLIP-ViP demo: 2 s 0.401 -> 0.698, 4 s 0.545 -> 0.614; mean-pool demo, 4 s 0.650 ->
0.720; on films of another seed (7) 0.367 -> 0.710, 0.487 -> 0.609, 0.571 -> 0.919. Shares
0.4-0.6 are within a few points of each other there and 0.5 is never far from the best; fixed
margins in cosine units did much less (0.02: 0.459 at 2 s; 0.05: 0.501), because each model
has its own cosine scale. Shots of at most 3 s: CLIP-ViP 0.532 -> 0.913, mean pool 0.501 ->
0.924; letting moments cross cuts there gave 0.863 and 0.865, and with shots of at most 10 s
(each film's shot is a segment) it took 0.933 down to 0.906 (CLIP-ViP) where stopping at
cuts leaves every moment its shot. With 10 s windows, longer than every scene there (2.2-8.6 s),
widening has little to find (0.274 -> 0.277).

What a moment always is: inside ``[0, duration]`` of its video, and containing the hit
segment's range, clamped to the video the same way (a last segment's frames can end a few
milliseconds past the container's duration: the moment ends at the duration, and keeps the
neighbours it merged on the other side).
``refine_range`` is the rule, a pure function of one video's segment times and scores;
``refine_hits`` reads the vectors and applies it to a list of hits. Moments are made of whole
segments: scoring finer sub-windows would need frames decoded and encoded per hit (the
re-ranker's cost), which a default-on step cannot pay.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import and_, or_, select

from .store.rows import unpack_vectors
from .store.schema import Embedding, Segment, Video

#: A neighbour joins when it scores at least ``best - max(MARGIN_FLOOR, MARGIN_SHARE * (best -
#: baseline))`` (see the module docstring for the measurement behind both numbers).
MARGIN_SHARE = 0.5
MARGIN_FLOOR = 0.01
#: Two segments are contiguous when the second starts at most this long after the first ends
#: (segments cut from frame times meet exactly; a gap is a segment that was never stored,
#: e.g. one that could not be decoded, and a moment never spans footage that was not indexed).
GAP_SECONDS = 0.25
#: A boundary between two segments is at a cut when a cut time of the video (``videos.cuts``,
#: stored by the shots segmenter) lies this close to where the later segment starts: segments
#: start at the first frame at or after a cut, so one frame at 2 fps or more; the pieces a long
#: shot is split into start far further from its cuts (half the segment length at least).
CUT_SECONDS = 0.5
#: Segments on each side of a hit that are read and that set its baseline: a moment is at most
#: ``2 * REACH + 1`` segments long, and a long video's other segments cost nothing.
REACH = 32


@dataclass(frozen=True)
class VideoSegments:
    """One video's stored segments near the hits (sorted by start) and their unit vectors."""

    segment_ids: np.ndarray  # (n,) int64
    starts: np.ndarray  # (n,) float64 seconds
    ends: np.ndarray  # (n,) float64 seconds
    vectors: np.ndarray  # (n, dim) float32
    duration: float
    #: The cut times the segments were planned from (empty for fixed windows).
    cuts: tuple[float, ...] = ()


def margin_for(
    scores: Sequence[float], best: int, *, share: float = MARGIN_SHARE, floor: float = MARGIN_FLOOR, reach: int = REACH
) -> float:
    """How far below ``scores[best]`` a neighbour may score and still join its moment: the
    share of the height of ``best`` above the median of the segments within ``reach`` of it."""
    sc = np.asarray(scores, dtype=np.float64)
    around = sc[max(0, best - reach) : best + reach + 1]
    return max(float(floor), float(share) * (float(sc[best]) - float(np.median(around))))


def refine_range(
    starts: Sequence[float],
    ends: Sequence[float],
    scores: Sequence[float],
    best: int,
    *,
    margin: float | None = None,
    duration: float | None = None,
    cuts: Sequence[float] = (),
    gap: float = GAP_SECONDS,
) -> tuple[float, float]:
    """The moment around segment ``best``: the contiguous run of segments scoring at least
    ``scores[best] - margin`` (default ``margin_for``), as ``(start, end)`` seconds clamped to
    ``[0, duration]``.

    ``starts``/``ends``/``scores`` describe one video's segments in time order. The run grows
    one neighbour at a time on each side and stops at the first segment that scores too low,
    that does not touch the run (a gap over ``gap`` seconds), or that lies across one of
    ``cuts`` (the video's shot cuts, seconds): a moment stays inside the hit's shot and joins
    only the pieces a long shot was split into. A neighbour scoring higher than ``best`` joins
    too: the moment is the matching stretch the hit segment belongs to. The result always
    contains ``best``'s range clamped to ``[0, duration]``.
    """
    s = np.asarray(starts, dtype=np.float64)
    e = np.asarray(ends, dtype=np.float64)
    sc = np.asarray(scores, dtype=np.float64)
    if not (len(s) == len(e) == len(sc)) or not 0 <= best < len(s):
        raise ValueError(f"segment {best} of {len(s)} (starts {len(s)}, ends {len(e)}, scores {len(sc)})")
    floor = sc[best] - max(margin_for(sc, best) if margin is None else float(margin), 0.0)
    cut = np.asarray(cuts, dtype=np.float64)

    def joins(i: int, j: int) -> bool:
        """Segment ``j`` may join the run at its neighbour ``i`` (``j`` is ``i ± 1``)."""
        later = max(i, j)
        touching = s[later] - e[later - 1] <= gap
        at_cut = cut.size > 0 and float(np.min(np.abs(cut - s[later]))) <= CUT_SECONDS
        return bool(sc[j] >= floor and touching and not at_cut)

    lo = hi = best
    while lo > 0 and joins(lo, lo - 1):
        lo -= 1
    while hi < len(s) - 1 and joins(hi, hi + 1):
        hi += 1
    start, end = float(s[lo : hi + 1].min()), float(e[lo : hi + 1].max())
    top = float("inf") if duration is None or not duration > 0 else float(duration)
    start, end = min(max(start, 0.0), top), min(max(end, 0.0), top)
    return start, max(start, end)


def read_segments(store, windows: dict[int, tuple[int, int]], encoder_id: int, dim: int) -> dict[int, VideoSegments]:
    """Per video id: its segments with ``lo <= idx <= hi`` and their vectors under ``encoder_id``.

    One SQL statement for all the videos, through the store's own sessions (a read-only query
    beside the store's API: the store has no call for "a video's vectors", and moments are its
    one user). Each window is a range of the (video_id, idx) order, so a long video costs only
    the segments near its hits.
    """
    if not windows:
        return {}
    near = [
        and_(Segment.video_id == int(vid), Segment.idx >= int(lo), Segment.idx <= int(hi)) for vid, (lo, hi) in windows.items()
    ]
    # ``encoder_id + 0``: SQLite's planner would otherwise start from ix_embeddings_encoder_gen
    # and walk every vector of the encoder (3.6 ms for 10 hits at 100k segments, against 1.5 ms
    # starting from the segments asked for and looking each vector up by its primary key).
    q = (
        select(Segment.video_id, Segment.id, Segment.start_s, Segment.end_s, Embedding.vector, Video.duration, Video.cuts)
        .join(Embedding, (Embedding.segment_id == Segment.id) & ((Embedding.encoder_id + 0) == int(encoder_id)))
        .join(Video, Video.id == Segment.video_id)
        .where(or_(*near))
        .order_by(Segment.video_id, Segment.start_s, Segment.idx)
    )
    by_video: dict[int, list] = {}
    with store.Session() as s:
        for row in s.execute(q):
            by_video.setdefault(int(row[0]), []).append(row)
    return {
        vid: VideoSegments(
            np.array([r[1] for r in rs], dtype=np.int64),
            np.array([r[2] for r in rs], dtype=np.float64),
            np.array([r[3] for r in rs], dtype=np.float64),
            unpack_vectors([r[4] for r in rs], dim, unit=True),
            float(rs[0][5]),
            tuple(float(c) for c in rs[0][6] or ()),
        )
        for vid, rs in by_video.items()
    }


def refine_hits(store, hits: list, qv: np.ndarray, *, fingerprint: str | None = None, reach: int = REACH) -> list:
    """Set ``moment_start`` / ``moment_end`` on each hit (in place; returned for chaining).

    ``qv`` is the query vector the hits were ranked by (unit length, under the store's encoder,
    ``fingerprint`` when known). A hit whose segment has no stored vector, or a store whose
    encoder changed since ranking, keeps ``None``: no moment is better than a made-up one.
    Each hit sees only the segments within ``reach`` of it, so its moment does not depend on
    which other hits are shown.
    """
    q = np.asarray(qv, dtype=np.float32).reshape(-1)
    rec = store.encoder() if hits else None
    if rec is None or int(rec.spec["dim"]) != len(q) or fingerprint not in (None, rec.fingerprint):
        return hits
    windows: dict[int, tuple[int, int]] = {}
    for h in hits:
        lo, hi = windows.get(h.video_id, (h.segment - reach, h.segment + reach))
        windows[h.video_id] = (min(lo, h.segment - reach), max(hi, h.segment + reach))
    videos = read_segments(store, windows, rec.id, len(q))
    scores = {vid: v.vectors @ q for vid, v in videos.items()}
    for h in hits:
        v = videos.get(h.video_id)
        where = np.flatnonzero(v.segment_ids == h.segment_id) if v is not None else ()
        if len(where) == 0:
            continue
        i = int(where[0])
        lo, hi = max(0, i - reach), i + reach + 1
        h.moment_start, h.moment_end = refine_range(
            v.starts[lo:hi], v.ends[lo:hi], scores[h.video_id][lo:hi], i - lo, duration=v.duration, cuts=v.cuts
        )
    return hits
