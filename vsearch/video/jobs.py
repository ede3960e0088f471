"""One file's decode job and the messages it yields: the unit a decoder process works on.

``decode_job`` opens the file, cuts it into segments (fixed windows, or at the shots a low-res
scan finds: ``shots``, ``segmenting``), plans each segment's frames (``exact`` or ``fast``,
``readplan``), decodes them at the encoder's size, and makes each segment's thumbnail from a
second, cheap read. Every failure becomes a message, never an exception, so
a worker process (``workers``) or a Ray task can stream them. No torch here.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import KW_ONLY, dataclass

import numpy as np

from ..errors import DecodeError
from ..perf import trace
from .decode import VideoReader, center_crop, park_idle_readers
from .pictures import encode_jpeg, thumbnail_decode_side
from .readplan import KeyframeTable, fast_unusable, snap_to_keyframes
from .sampling import SegmentPlan, plan_segments, uniform_indices
from .segmenting import cut_frames, final_plans, segment_plans
from .shots import DEFAULT_SETTINGS, detect_shots, distance, histograms, stream_shots


@dataclass(frozen=True)
class DecodeJob:
    """Decode one file into per-segment frame stacks at the encoder's pixel size."""

    id: int
    path: str
    frames: int
    image_size: int
    resize: str
    segment_seconds: float
    min_tail_seconds: float
    _: KW_ONLY
    #: Explicit segments ``(index, start_frame, end_frame, start_s, end_s)`` instead of cutting by
    #: time, e.g. to re-embed the segments a store already has with a new encoder.
    segments: tuple[tuple[int, int, int, float, float], ...] | None = None
    #: "exact" (the uniform frames) or "fast" (the nearest keyframe within half a GOP, when the
    #: file's GOPs allow; ``readplan``).
    sampling: str = "exact"
    #: Decoder threads; None: what the pool leaves each worker (``decoder_threads``).
    threads: int | None = None
    #: Make each segment's thumbnail in the worker, this many pixels wide (None: send the middle
    #: sampled frame instead, for callers that want no thumbnail or make their own).
    thumb_width: int | None = None
    #: "fixed" windows of ``segment_seconds``, or "shots": segments end at the cuts a low-res scan
    #: finds (``video.shots``), long shots split evenly (``video.segmenting``). Ignored with ``segments``.
    segmenter: str = "fixed"
    #: Re-planning a stored video (``index --resegment``): its stored plans as ``(start_frame,
    #: end_frame)`` pairs. When the new plan is the same, nothing is decoded: the ``info`` message
    #: says ``"same_plan": True`` and ``done`` follows.
    known_plans: tuple[tuple[int, int], ...] | None = None
    #: With ``segmenter="shots"``: send each shot's segments as soon as the scan has settled the
    #: cut that ends it (``("plans", ...)`` messages), decoded while the rest of the file is
    #: still scanned, instead of all plans after the whole scan (a long file's first segment
    #: then comes after its first shot, not after its last). Consumers must read ``"plans"``
    #: messages (``embedding.encode_stream`` does; Ray's tasks do not ask for it).
    stream_plans: bool = False
    #: With explicit ``segments``: the file's cut times (seconds from its first frame) when its
    #: segments were planned from a shot scan, else None (not known). Where a segment does not
    #: end at a cut, its last frame may be the next segment's first keyframe (``fast``).
    cuts: tuple[float, ...] | None = None
    #: Fault injection for tests of crash handling: "segfault" or "hang" in a worker process.
    #: Ignored when decoding in-process. Never set by vsearch itself.
    fault: str | None = None


def default_workers() -> int:
    """Decoder processes by default: one per core, at most 4."""
    return max(1, min(4, (os.cpu_count() or 2)))


def decoder_threads(workers: int, cpus: int | None = None) -> int:
    """Threads per decoder: the cores the pool leaves each worker (all of them when decoding
    in-process). Threaded decoding was 1.6x faster than one thread on 1080p H.264."""
    cpus = cpus or os.cpu_count() or 1
    return max(1, cpus // max(1, workers))


# Messages, all tuples so they pickle small:
#   ("info", job_id, info: dict, plans: list[tuple])    plans as (index, start_frame, end_frame, start_s, end_s)
#   ("plans", job_id, plans: list[tuple], info: dict)    more plans (stream_plans), and info to merge
#   ("segment", job_id, seg_index, frame_indices, frames uint8 (T, S, S, 3), thumbnail)
#                                                       thumbnail: (jpeg, w, h) or None (see DecodeJob.thumb_width)
#   ("segment_error", job_id, seg_index, reason)
#   ("note", job_id, text)                                a warning about a file that still indexed
#   ("done", job_id)
#   ("error", job_id, reason)
FINAL = ("done", "error")


def decode_job(job: DecodeJob) -> Iterator[tuple]:
    """All messages for one job. Every failure becomes an ``error`` message, never an exception."""
    trace(f"job {job.id}: start")
    try:
        with VideoReader(job.path, job.image_size, job.resize, threads=job.threads or 1) as reader:
            shots = job.segmenter == "shots" and job.segments is None
            table = reader.keyframes()
            snap, why = job.sampling == "fast", None
            if table is not None and reader.open_gops:
                # The table counts keyframes in decode order, which open GOPs reorder: plan with
                # the keyframes as shown instead (or read in order when that cannot be trusted).
                table = reader.read_by_gop_as_shown()
                why = "open GOPs (frames shown before a keyframe refer to the GOP before it); sampled exactly"
            elif table is not None and not reader.decord_seeks_right:
                table = reader.read_by_gop_as_shown() or table  # (MPEG-TS: decord's seeks land a GOP late)
            reader.read_by_gop(table)  # each sampled frame decodes with the reference frames it needs, no more
            trace(f"job {job.id}: opened, keyframes read")
            if snap:
                why = why or fast_unusable(table, reader.info.fps)
                snap = why is None
                if snap:
                    reader.use_keyframes(table)
            if shots and job.stream_plans and job.known_plans is None:
                yield from _streamed(job, reader, table, snap, why)
                return
            cuts, shot_note = _cuts(job, table) if shots else (None, None)
            if shots:
                trace(f"job {job.id}: shots scanned")
            if job.segments is not None:
                plans = [SegmentPlan(*seg) for seg in job.segments]
            elif cuts is not None:
                plans = segment_plans(reader.info.frame_times, cuts, job.segment_seconds, job.min_tail_seconds)
            else:
                plans = plan_segments(reader.info.frame_times, job.segment_seconds, job.min_tail_seconds)
            if not plans:
                raise DecodeError(job.path, "no video frames")
            info = {**reader.info.as_dict(), "sampling": "fast" if snap else "exact"}  # what was done, as recorded
            if shots:
                info["cuts"] = cuts
            same = job.known_plans is not None and tuple(job.known_plans) == tuple((p.start_frame, p.end_frame) for p in plans)
            if same:
                info["same_plan"] = True
            # (a plan that stays sends no segments: nothing is decoded or embedded again)
            sent = [] if same else [(p.index, p.start_frame, p.end_frame, p.start_s, p.end_s) for p in plans]
            yield ("info", job.id, info, sent)
            if shot_note:
                yield ("note", job.id, shot_note)
            if same:
                yield ("done", job.id)
                return
            if why and job.sampling == "fast":
                yield ("note", job.id, why)
            thumbs = _Thumbnails(job, table, reader.header.display_size) if job.thumb_width else None
            try:
                known = cut_frames(reader.info.frame_times, job.cuts if job.segments is not None else cuts)
                yield from _decode_segments(job, reader, plans, snap, table, thumbs, known)
            finally:
                if thumbs:
                    thumbs.close()
            yield from _reader_notes(job, reader)
        trace(f"job {job.id}: done")
        yield ("done", job.id)
    except DecodeError as exc:
        yield ("error", job.id, exc.reason)
    except MemoryError:
        yield ("error", job.id, "out of memory while decoding")
    except Exception as exc:  # noqa: BLE001 - the per-file boundary: record the reason, go on
        yield ("error", job.id, f"{type(exc).__name__}: {str(exc).strip()[:300]}")


#: The consumer held a message this long or longer: it is slower than decoding (a full pipe to
#: the main process, an encoder at work), so the next wait is likely too.
CONSUMER_WAIT_S = 0.05


def parking(messages: Iterator[tuple]) -> Iterator[tuple]:
    """``messages`` unchanged; once the consumer has been slower than decoding, each next
    message is handed over with this process's decord readers parked (``park_idle_readers``).
    An idle decord2 reader keeps a core spinning while its decoder waits: a worker on a full
    pipe, or the inline pool while the encoder runs. Measured in one process on a 1080p file
    that decord read then (open GOPs; segments and thumbnails): a consumer holding 12 segments
    for 0.5 s each left 12.0 CPU s of spinning; parked, 1.0 (the first, before any wait). A
    decode-bound run hands each message over in about a millisecond and is never parked: a
    parked reader re-seeks."""
    waited = False
    for msg in messages:
        if waited:
            park_idle_readers()
        t0 = time.monotonic()
        yield msg
        waited = time.monotonic() - t0 >= CONSUMER_WAIT_S


#: Where a file's cuts are not known (fixed windows), a segment's last sampled frame moves on to
#: the keyframe that starts the next segment (``readplan.snap_to_keyframes(open_end=True)``) only
#: when that keyframe and the keyframe its exact frame decodes from are this close
#: (``shots.distance`` of colour histograms); else it stays exact. It is the shot scan's own rule
#: for two keyframes with no cut between them (``ShotSettings.candidate``): a stricter one turned
#: down every crossing on moving pictures (testsrc2 at 32 px: 0.05 between consecutive frames),
#: while cuts between scenes measured 0.6 and more.
CROSSING_CHANGE = DEFAULT_SETTINGS.candidate


def _decode_segments(
    job: DecodeJob, reader: VideoReader, plans, snap: bool, table, thumbs, cuts: frozenset[int] | None,
    decoded: dict[int, np.ndarray] | None = None,
) -> Iterator[tuple]:  # fmt: skip
    """The ``segment`` (or ``segment_error``) message of each plan: its sampled frames at the
    encoder's size, and its thumbnail.

    ``fast``: a segment's last frame may be the keyframe that starts the next segment when no
    cut lies between: ``cuts`` (the frames that start a shot; None where they are not known)
    does not hold the segment's end, and where the cuts are not known the keyframes on either
    side of the boundary are alike (``CROSSING_CHANGE``). Those two keyframes are read alone
    first (a keyframe decodes alone), so that the last GOP is read once, with or without its
    last frame. ``decoded``: frames already decoded exactly as ``reader`` returns them, by index
    (the shot scan's keyframes; a keyframe a segment read past its end, for the next one), not
    decoded again; each segment adds what it read past its end and drops what lies behind it. A
    caller that decodes its plans in several calls passes the same dict."""
    have = {} if decoded is None else decoded
    for p in plans:
        exact = uniform_indices(p.start_frame, p.end_frame, job.frames)
        open_end = snap and (cuts is None or p.end_frame not in cuts)
        idx = snap_to_keyframes(exact, p.start_frame, p.end_frame, table, open_end=open_end) if snap else list(exact)
        shown = thumbs.frame_for(idx[len(idx) // 2], p) if thumbs else None
        crossed = [j for j, i in enumerate(idx) if i >= p.end_frame]
        if crossed and cuts is None and not _no_cut_across(reader, table, [(exact[j], idx[j]) for j in crossed], have):
            for j in crossed:
                idx[j] = exact[j]  # the picture changed (a cut, or fast motion): the frame itself
        try:
            got, picture = _read(reader, idx, have, shown, thumbs.side if thumbs else None)
            frames = center_crop(got, job.image_size)
        except DecodeError as exc:
            _drop_before(have, p.end_frame)
            yield ("segment_error", job.id, p.index, exc.reason)
            continue
        have.update((i, f.copy()) for i, f in zip(idx, got) if i >= p.end_frame)  # (the next segment's first frame)
        _drop_before(have, p.end_frame)
        trace(f"job {job.id}: segment {p.index} decoded")
        thumb = thumbs.make(shown, picture) if thumbs else None
        trace(f"job {job.id}: segment {p.index} thumbnail")
        yield ("segment", job.id, p.index, idx, frames, thumb)


def _drop_before(frames: dict[int, np.ndarray], end: int) -> None:
    """Let go of the frames before ``end``: no segment still to come samples them."""
    for i in [i for i in frames if i < end]:
        del frames[i]


def _no_cut_across(reader: VideoReader, table, moves: list[tuple[int, int]], have: dict[int, np.ndarray]) -> bool:
    """Whether each ``(exact frame, keyframe past the segment's end)`` move crosses no cut by the
    shot scan's keyframe rule: the keyframe the exact frame decodes from and the keyframe it
    would move to differ by less than ``CROSSING_CHANGE``. The keyframes are read alone and
    added to ``have``; one that cannot be read keeps the frame exact."""
    pairs = [(table.gop(e)[0], k) for e, k in moves]
    keys = sorted({k for pair in pairs for k in pair} - have.keys())
    try:
        if keys:
            have.update(zip(keys, reader.get(keys)))
    except DecodeError:
        return False
    hists = {k: histograms(have[k][None])[0] for pair in pairs for k in pair}
    return all(float(distance(hists[a], hists[b])) < CROSSING_CHANGE for a, b in pairs)


def _read(
    reader: VideoReader, idx: list[int], have: dict[int, np.ndarray], shown: int | None, side: int | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Frames ``idx`` as decoded (before cropping), those in ``have`` not decoded again, and the
    picture of ``shown`` at ``side`` when it is one of the frames decoded (else None)."""
    need = sorted({i for i in idx if i not in have})
    decoded: dict[int, np.ndarray] = {}
    picture = None
    if need:
        if shown is not None and shown in need:  # (fast: a sampled keyframe) decoded once for both
            arr, picture = reader.get_with_picture(need, shown, side)
        else:
            arr = reader.get(need)
        decoded = dict(zip(need, arr))
    return np.stack([have[i] if i in have else decoded[i] for i in idx]), picture


def _reader_notes(job: DecodeJob, reader: VideoReader) -> Iterator[tuple]:
    for note in reader.notes:
        yield ("note", job.id, note)
    if reader.substituted:
        yield ("note", job.id, f"{reader.substituted} sampled frames could not be decoded; the nearest decoded frames stand in")


def _as_tuples(plans) -> list[tuple]:
    return [(p.index, p.start_frame, p.end_frame, p.start_s, p.end_s) for p in plans]


def _streamed(job: DecodeJob, reader: VideoReader, table: KeyframeTable | None, snap: bool, why: str | None) -> Iterator[tuple]:
    """A ``shots`` job whose segments go out shot by shot while the scan reads on
    (``DecodeJob.stream_plans``): ``info`` with no plans, then per settled stretch a ``plans``
    message and its segments, the last ``plans`` message carrying the cuts. The plans are those
    of the whole-file path (``segmenting.final_plans``); a scan that fails midway keeps the
    segments already sent and plans the rest from the cuts found before it. ``snap``/``why``: the
    job's fast-plan decision, made by ``decode_job``."""
    frame_times = reader.info.frame_times
    yield ("info", job.id, {**reader.info.as_dict(), "sampling": "fast" if snap else "exact"}, [])
    if why and job.sampling == "fast":
        yield ("note", job.id, why)
    thumbs = _Thumbnails(job, table, reader.header.display_size) if job.thumb_width else None
    sent: list = []
    known: list[float] = []
    failed = False
    cuts: list[float] | None = None
    decoded: dict[int, np.ndarray] = {}  # (``_decode_segments``: the scan's keyframes, as this reader returns them)
    scan = stream_shots(job.path, table, threads=job.threads or 1, share=(reader, decoded) if snap else None)
    try:
        try:
            while True:
                before = known
                try:
                    _frontier, known = next(scan)
                except StopIteration as done:
                    cuts = done.value.times
                    break
                if known == before:
                    continue  # no new cut, no new plan (planning reads the whole file's frame times)
                ready = final_plans(frame_times, known, job.segment_seconds, job.min_tail_seconds)
                new = ready[len(sent) :]
                if new:
                    trace(f"job {job.id}: {len(new)} segments settled")
                    yield ("plans", job.id, _as_tuples(new), {})
                    yield from _decode_segments(job, reader, new, snap, table, thumbs, cut_frames(frame_times, known), decoded)
                    sent = ready
        except DecodeError as exc:
            failed = True
            if not sent:
                yield ("note", job.id, scan_failed(exc.reason))
            else:
                cuts = known
                yield ("note", job.id, f"shot detection failed ({exc.reason}) after {sent[-1].end_s:.1f} s; the rest is cut at the cuts found before it")
        trace(f"job {job.id}: shots scanned")
        if cuts is None:
            plans = plan_segments(frame_times, job.segment_seconds, job.min_tail_seconds)
        else:
            plans = segment_plans(frame_times, cuts, job.segment_seconds, job.min_tail_seconds)
        if not plans:
            raise DecodeError(job.path, "no video frames")
        if plans[: len(sent)] != sent:
            raise RuntimeError("the streamed segment plans differ from the file's plan")  # (an invariant: never expected)
        rest = plans[len(sent) :]
        yield ("plans", job.id, _as_tuples(rest), {"cuts": cuts})
        # (after a failed scan the cuts past its end are not known)
        known_cuts = None if failed else cut_frames(frame_times, cuts)
        yield from _decode_segments(job, reader, rest, snap, table, thumbs, known_cuts, decoded)
    finally:
        scan.close()  # (its readers, when the scan did not run to its end)
        if thumbs:
            thumbs.close()
    yield from _reader_notes(job, reader)
    trace(f"job {job.id}: done")
    yield ("done", job.id)


def _cuts(job: DecodeJob, table: KeyframeTable | None) -> tuple[list[float] | None, str | None]:
    """The file's cut times (seconds) for a ``shots`` job, and a note when the scan failed: the
    file is then cut into fixed windows (``None``), never failed for it."""
    try:
        return detect_shots(job.path, table, threads=job.threads or 1).times, None
    except DecodeError as exc:
        return None, scan_failed(exc.reason)


def scan_failed(reason: str) -> str:
    """The warning of a file whose cut scan failed before any segment was planned."""
    return f"shot detection failed ({reason}); cut into fixed windows"


class _Thumbnails:
    """Segment thumbnails at display resolution from a second, cheap read: the keyframe nearest
    the segment's middle sampled frame (inside the segment, at most a quarter of it away; else
    that middle frame), decoded at thumbnail size. The encoder's frames are too small to look
    at (57x32 px for a 32 px model); decoding them larger would slow every sampled frame, while
    one keyframe per segment costs little. When that keyframe is itself a sampled frame (fast
    sampling), the segment's own decode scales it twice and no second read is made. JPEG
    encoding happens here too, in the worker, off the encoder's path."""

    def __init__(self, job: DecodeJob, table: KeyframeTable | None, display_size: tuple[int, int]):
        self.job, self.table, self.display_size = job, table, display_size
        #: The short side a thumbnail is decoded at.
        self.side = thumbnail_decode_side(*display_size, job.thumb_width)
        self._reader: VideoReader | None = None
        self._failed = False

    def frame_for(self, middle: int, plan: SegmentPlan) -> int | None:
        """The frame the segment's thumbnail shows (None once this file's thumbnails failed)."""
        if self._failed:
            return None
        frame = middle
        if self.table is not None and len(self.table.keys):
            keys = self.table.keys[(self.table.keys >= plan.start_frame) & (self.table.keys < plan.end_frame)]
            if len(keys):
                near = int(keys[abs(keys - middle).argmin()])
                # A keyframe a quarter of the segment away or closer shows the same moment cheaply;
                # a farther one (long GOPs) would show another: decode the middle frame itself.
                if abs(near - middle) * 4 <= plan.end_frame - plan.start_frame:
                    frame = near
        return frame

    def make(self, frame: int | None, picture: np.ndarray | None = None) -> tuple[bytes, int, int] | None:
        """The JPEG of ``frame``: ``picture`` when the segment's decode made it, else read now."""
        if frame is None or self._failed:
            return None
        if picture is not None:
            return encode_jpeg(picture, max_width=self.job.thumb_width)
        try:
            if self._reader is None:
                side = self.side
                self._reader = VideoReader(self.job.path, side, "crop", threads=self.job.threads or 1)
                self._reader.use_keyframes(self.table)  # PyAV (rotated files) then skips GOPs between
                self._reader.read_by_gop(self.table)  # a keyframe alone decodes alone
            return encode_jpeg(self._reader.get([frame])[0], max_width=self.job.thumb_width)
        except DecodeError:
            self._failed = True  # no thumbnail for this file; the page makes one lazily
            return None

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
