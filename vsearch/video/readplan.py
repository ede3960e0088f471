"""Which frames to read and how to decode them, planned from a file's keyframe table.

A sampled frame costs its decode from the keyframe before it: on camera footage (2 s GOPs)
decoding the 24 sampled frames of a 30 s file took 46% of decoding all 900. Two plans:

- ``exact``: the uniformly spaced frames. Reads are grouped by GOP, so each GOP is decoded
  once for all the frames it serves, and decoding stops at the last frame needed from it.
- ``fast``: a sampled frame moves to the nearest keyframe when that lies at most half a GOP
  from it, provided the segment's frame budget allows: the GOP is no longer than two sampling
  intervals, and the keyframe serves no other sampled frame of the segment
  (``KEYFRAME_SHARE``). Keyframes decode alone (33x faster than a full decode on a
  high-bitrate file); frames that cannot move stay exact, decoded from their keyframe as in
  ``exact``. A segment's last frame may also move on to the keyframe that starts the next
  segment, where the caller knows that no cut lies between (``open_end``).

``exact`` and ``fast`` are two plans over the same decoder, not two decoders. Pure functions of
frame indices: tested on synthetic tables without decoding anything.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: A file whose keyframes are further apart than this is sampled exactly (and said so once):
#: snapping would move frames by seconds.
MAX_FAST_GOP_SECONDS = 10.0

#: Sampled frames of one segment that one keyframe may stand in for. With 2 s GOPs a 10 s
#: segment has 5 keyframes for its 8 frames, so 3 stay exact, and their decode from a keyframe
#: is most of a fast read's CPU. At 2 (measured on 4 x 30 s of 1080p: 22% less decoding CPU),
#: fast against exact on the sample data with 2 s GOPs (``bench/ingest.py --only quality``):
#: the hardened CLIP-ViP demo holds (mean cos 0.9998, min 0.9969, same top-1 48/48; at 1:
#: 0.9999, 0.9985, 48/48), but the mean-pool demo's worst segment falls to 0.942 (mean 0.9968,
#: R@1 18/48 against exact's 20; at 1: min 0.982, R@1 19/48), under the guard's 0.95
#: (tests/test_sampling_quality.py). The CLIP-ViP demo before hardening lost up to 0.12.
KEYFRAME_SHARE = 1


@dataclass(frozen=True)
class KeyframeTable:
    """The keyframes of a file as frame indices (sorted, unique, inside ``[0, num_frames)``)."""

    keys: np.ndarray
    num_frames: int

    @classmethod
    def build(cls, keys, num_frames: int) -> KeyframeTable:
        k = np.unique(np.asarray(list(keys), dtype=np.int64))
        k = k[(k >= 0) & (k < num_frames)]
        return cls(k, int(num_frames))

    def gop(self, i: int) -> tuple[int, int]:
        """``(key, next_key)`` around frame ``i``: decoding ``i`` starts at ``key``. Frames before
        the first keyframe (an open GOP's leading frames) count from frame 0."""
        pos = int(np.searchsorted(self.keys, i, side="right")) - 1
        key = int(self.keys[pos]) if pos >= 0 else 0
        nxt = int(self.keys[pos + 1]) if pos + 1 < len(self.keys) else self.num_frames
        return key, nxt

    def is_key(self, i: int) -> bool:
        pos = int(np.searchsorted(self.keys, i))
        return pos < len(self.keys) and int(self.keys[pos]) == i

    def median_gop(self) -> float:
        """Typical frames between keyframes (the whole file when it has one keyframe)."""
        if len(self.keys) < 2:
            return float(self.num_frames)
        return float(np.median(np.diff(np.append(self.keys, self.num_frames))))


@dataclass(frozen=True)
class GopRead:
    """Decode from ``key`` on, keeping ``frames`` (sorted); stop after the last of them."""

    key: int
    frames: tuple[int, ...]

    @property
    def decoded(self) -> int:
        """Frames the decoder produces for this read (the keyframe through the last kept frame)."""
        return self.frames[-1] - self.key + 1


def fast_unusable(table: KeyframeTable | None, fps: float) -> str | None:
    """Why ``fast`` cannot be used for a whole file, or None. Said once per file as a warning."""
    if table is None or len(table.keys) == 0:
        return "no keyframe index; sampled exactly"
    if fps > 0 and len(table.keys) > 1 and table.median_gop() / fps > MAX_FAST_GOP_SECONDS:
        return f"a keyframe only every {table.median_gop() / fps:.1f} s; sampled exactly"
    if len(table.keys) == 1 and fps > 0 and table.num_frames / fps > MAX_FAST_GOP_SECONDS:
        return "a single keyframe; sampled exactly"
    return None


def snap_to_keyframes(
    indices: list[int], start: int, end: int, table: KeyframeTable, share: int = KEYFRAME_SHARE, *, open_end: bool = False
) -> list[int]:
    """The ``fast`` plan for one segment ``[start, end)``: each sampled frame moves to the nearest
    keyframe at most half a GOP away inside the segment, when the GOP is at most two sampling
    intervals long; otherwise it stays. A keyframe serves at most ``share`` sampled frames: a
    further frame nearest to it stays exact (see ``KEYFRAME_SHARE`` for what duplicates cost).

    Never past the segment's end, unless ``open_end``: then a frame may also move to a keyframe
    at or after ``end`` (the same half-GOP rule; in practice the keyframe that starts the next
    segment, for the segment's last frame). The caller must make sure that no cut lies in
    between (``jobs._decode_segments``: the shot scan found none there, or the keyframes either
    side of the boundary are alike): the next frame may lie beyond a cut. The last frame
    of a segment is its dearest read (a whole GOP's reference frames when segments and GOPs
    align), and the next segment decodes that keyframe anyway.
    """
    if not indices:
        return []
    span = max(indices[-1] - indices[0], 1)
    interval = span / (len(indices) - 1) if len(indices) > 1 else float(end - start)
    out: list[int] = []
    used: dict[int, int] = {}
    for i in indices:
        key, nxt = table.gop(i)
        size = nxt - key
        best = i
        if size <= 2 * interval:
            options = [k for k in (key, nxt) if start <= k and (k < end or open_end) and table.is_key(k)]
            if options:
                near = min(options, key=lambda k: (abs(k - i), k))
                if abs(near - i) * 2 <= size and (near == i or used.get(near, 0) < share):
                    best = near
        used[best] = used.get(best, 0) + 1
        out.append(best)
    return out


def plan_reads(indices: list[int], table: KeyframeTable | None) -> list[GopRead]:
    """Group the distinct wanted frames by the keyframe their decode starts from, in file order.
    Without a table, one read from frame 0 (a forward-only decoder's view)."""
    wanted = sorted(set(int(i) for i in indices))
    if not wanted:
        return []
    if table is None or len(table.keys) == 0:
        return [GopRead(0, tuple(wanted))]
    reads: list[GopRead] = []
    for i in wanted:
        key = table.gop(i)[0]
        if reads and reads[-1].key == key:
            reads[-1] = GopRead(key, (*reads[-1].frames, i))
        else:
            reads.append(GopRead(key, (i,)))
    return reads


def decoded_frames(reads: list[GopRead]) -> int:
    """What a plan costs: frames decoded in all, keyframes included."""
    return sum(r.decoded for r in reads)
