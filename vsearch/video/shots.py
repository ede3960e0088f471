"""Shot boundaries (hard cuts) from colour histograms of small frames: where segments should end.

A cut replaces most of the picture at once; inside a shot consecutive frames keep their colours
even while things move. Each frame becomes per-channel histograms of a downscaled picture (R, G,
B, ``BINS`` bins each) and consecutive frames are compared by half the L1 distance, averaged over
the channels (0: the same colours, 1: none in common). A cut is a frame step whose distance is

- at least ``threshold`` (a real change of picture),
- at least ``ratio`` times the median distance around it (a pan, fast motion or a noisy picture
  raises every distance near it; a cut stands out of its neighbourhood),
- not undone within ``flash_s`` (a flash or a strobe: the picture before comes back),
- at least ``min_shot_s`` from a stronger cut and from either end (a slideshow with a new picture
  every frame does not become one shot per frame).

Reading costs more than all of that, so the plan follows the file's keyframes. With keyframes at
most ``max_gop_s`` apart (camera footage: 2 s GOPs) only the keyframes are decoded first; a GOP
whose two boundary keyframes differ by at least ``candidate`` may hold a cut, and is decoded
whole, at low resolution, to find the frame, unless the file's own packet sizes clear it
(``gops_to_decode``). Files with sparse keyframes (a PyAV-written file has one) are decoded
once, sequentially, at low resolution. Everything but ``detect_shots`` is pure numpy.

Why packet sizes: a zoom, a pan or a crowd changes the picture between keyframes as much as a
cut does, and on camera-like 1080p (a fractal zoom, the game of life) half the GOPs passed the
keyframe test, so the scan decoded 427 of 900 frames and cost more than the segments'
decoding. An encoder cannot predict the first frame after a cut from the frame before it, so
that frame's packet is coded mostly intra and stands out of its GOP (3.6-7.7x the GOP's
typical large packet on rendered cuts, against at most 1.46x across a fractal zoom); a cut to
a picture that is cheaper to code instead lowers the packets' level. A GOP whose packets show neither, whose end
keyframe sits on the file's regular keyframe grid (an encoder's scene-cut keyframe is off it),
and whose keyframe change is less than ``motion_ratio`` times its neighbours' is sustained
motion and is not decoded. The sizes come from the container's index (MP4/MOV): no decoding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .readplan import KeyframeTable

if TYPE_CHECKING:
    from .decode import VideoReader

#: Histogram bins per colour channel (a power of two: a pixel's bin is a shift).
BINS = 32


@dataclass(frozen=True)
class ShotSettings:
    """What counts as a cut, and how frames are read to find one."""

    threshold: float = 0.04
    ratio: float = 4.0
    #: The neighbourhood (each side) whose median distance a cut must stand out of.
    window_s: float = 1.0
    flash_s: float = 0.25
    min_shot_s: float = 0.6
    #: Keyframes this far apart make their GOP worth decoding whole. Higher than ``threshold``:
    #: two keyframes 2 s apart differ more than consecutive frames (grain, motion), and decoding
    #: every GOP whose keyframes differ by 0.02 cost 1.6x the CPU on camera-like 1080p films
    #: for two false cuts in grain; a cut that changes only a small object inside a long GOP is
    #: the price (sequential reading still finds it).
    candidate: float = 0.15
    #: Packet-size triage of candidate GOPs (``gops_to_decode``): a packet this many times the
    #: median of the GOP's larger half is a frame the encoder could not predict (a cut) ...
    spike: float = 2.0
    #: ... and a GOP whose packets' median level changes this much at some frame (a cut to or
    #: from a plain picture) is decoded too.
    #: (A zoom's GOPs shifted at most 1.45x on the footage measured; the first GOP of a scene
    #: that starts to move, 2.4-2.9x, is decoded for it; a zoom cut to a test pattern, 2.58x.)
    level_shift: float = 2.0
    #: A GOP with flat packets is still decoded when its keyframe change is at least this many
    #: times the smaller of its neighbours' (a cut exactly at its end keyframe); below it, the
    #: change is the sustained motion its neighbours show as well.
    motion_ratio: float = 2.0
    #: Keyframe-first reading when keyframes are at most this far apart (median), else sequential.
    max_gop_s: float = 4.0
    #: Frames are decoded at ``side`` x ``side`` pixels (the aspect does not matter to a histogram).
    side: int = 64
    #: Frames decoded per read in the sequential plan (memory stays flat on long files).
    chunk: int = 120


DEFAULT_SETTINGS = ShotSettings()


@dataclass
class ShotScan:
    """What a scan found: cuts as frame indices (the first frame of each new shot) and times
    (that frame's start, seconds from the first frame), how the file was read, and the cost."""

    cuts: list[int] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    method: str = "sequential"  # "keyframes" or "sequential"
    decoded: int = 0  # frames the scan asked the decoder for


def histograms(frames: np.ndarray, bins: int = BINS) -> np.ndarray:
    """``(n, 3 * bins)`` pixel counts (uint16 while a frame has fewer than 65,536 pixels) of
    uint8 RGB ``(n, h, w, 3)`` frames: the R, G and B histograms side by side."""
    frames = np.asarray(frames)
    n = len(frames)
    if n == 0:
        return np.zeros((0, 3 * bins), np.uint16)
    shift = 8 - int(np.log2(bins))
    pixels = frames.reshape(n, -1, 3)
    idx = (pixels >> shift).astype(np.int32) + np.arange(3, dtype=np.int32) * bins
    idx += (np.arange(n, dtype=np.int32) * 3 * bins)[:, None, None]
    counts = np.bincount(idx.ravel(), minlength=n * 3 * bins).reshape(n, 3 * bins)
    return counts.astype(np.uint16 if pixels.shape[1] < 65536 else np.uint32)


def distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Half the L1 distance of normalised histograms, averaged over the three channels: 0 for the
    same colours, 1 for none in common. Rows broadcast (``(n, B)`` with ``(n, B)`` or ``(B,)``)."""
    a = np.asarray(a, np.float32)
    b = np.asarray(b, np.float32)
    pa = a.sum(axis=-1, keepdims=True) / 3.0
    pb = b.sum(axis=-1, keepdims=True) / 3.0
    return np.abs(a / np.maximum(pa, 1) - b / np.maximum(pb, 1)).sum(axis=-1) / 6.0


def steps(hists: np.ndarray) -> np.ndarray:
    """Distance of each frame to the next: ``(n - 1,)``."""
    if len(hists) < 2:
        return np.zeros(0, np.float32)
    return distance(hists[:-1], hists[1:])


def find_cuts(
    hists: np.ndarray, fps: float, settings: ShotSettings = DEFAULT_SETTINGS, first: int = 0
) -> list[tuple[int, float]]:
    """Candidate cuts in consecutive frames ``first, first + 1, ...``: ``(frame index of the new
    shot's first frame, strength)`` for every step that passes the threshold, the ratio test
    against its neighbourhood's median and the flash test. ``select_cuts`` then applies the
    minimum shot length."""
    d = steps(hists)
    fps = fps if fps and np.isfinite(fps) and fps > 0 else 25.0
    w = max(2, int(round(settings.window_s * fps)))
    flash = max(1, int(round(settings.flash_s * fps)))
    out: list[tuple[int, float]] = []
    for i in np.flatnonzero(d >= settings.threshold):
        i = int(i)
        local = np.concatenate([d[max(0, i - w) : i], d[i + 1 : i + 1 + w]])
        if local.size and d[i] < settings.ratio * float(np.median(local)):
            continue  # everything around moves this much: motion or noise, not a cut
        # A flash: a picture from before the step is seen again just after it (or the reverse).
        before = hists[max(0, i - flash) : i + 1]
        after = hists[i + 1 : i + 2 + flash]
        if len(before) > 1 or len(after) > 1:
            pairs = distance(before[:, None, :], after[None, :, :])
            pairs[-1, 0] = np.inf  # the step itself
            if float(pairs.min()) < settings.threshold / 2:
                continue
        out.append((first + i + 1, float(d[i])))
    return out


def select_cuts(
    candidates: list[tuple[int, float]], num_frames: int, fps: float, settings: ShotSettings = DEFAULT_SETTINGS
) -> list[int]:
    """The strongest candidates first, each kept when it lies at least ``min_shot_s`` from every
    cut kept so far and from both ends of the video; sorted frame indices."""
    fps = fps if fps and np.isfinite(fps) and fps > 0 else 25.0
    gap = max(1, int(round(settings.min_shot_s * fps)))
    kept: list[int] = []
    for frame, _strength in sorted(candidates, key=lambda c: (-c[1], c[0])):
        if frame < gap or num_frames - frame < gap:
            continue
        if all(abs(frame - k) >= gap for k in kept):
            kept.append(frame)
    return sorted(kept)


def keyframe_points(
    table: KeyframeTable | None, num_frames: int, fps: float, settings: ShotSettings = DEFAULT_SETTINGS,
    last: bool = True,
) -> np.ndarray | None:  # fmt: skip
    """The frames a keyframe-first scan decodes first (the keyframes, the first frame and, with
    ``last``, the last frame), or None when keyframes are too sparse for it and the file is read
    sequentially. The last frame is no keyframe: decoding it costs its whole GOP's reference
    frames (0.66 CPU s on 1080p, more than the file's 15 keyframes), so a scan that knows the
    packet sizes judges the final GOP by them instead."""
    if table is None or len(table.keys) < 2 or num_frames < 3:
        return None
    if not fps or fps <= 0 or table.median_gop() / fps > settings.max_gop_s:
        return None
    ends = [0, num_frames - 1] if last else [0]
    return np.unique(np.concatenate([ends, table.keys]).astype(np.int64))


def _packets_show_an_event(sizes: np.ndarray, settings: ShotSettings) -> bool:
    """Whether a GOP's non-key packet sizes (presentation order) hold a frame coded as if
    nothing came before it (a spike) or a change of level (a cut to or from a plain picture)."""
    g = np.asarray(sizes, np.float64)
    if len(g) < 8:
        return True  # too few frames to tell motion from a cut: decode
    upper = float(np.median(g[g >= np.median(g)]))
    if g.max() >= settings.spike * max(upper, 1.0):
        return True
    part = 6
    for k in range(part, len(g) - part + 1):
        a, b = float(np.median(g[:k])), float(np.median(g[k:]))
        if max(a, b) >= settings.level_shift * max(min(a, b), 1.0):
            return True
    return False


def gops_to_decode(points: np.ndarray, key_steps: np.ndarray, sizes: np.ndarray | None,
                   settings: ShotSettings = DEFAULT_SETTINGS) -> list[int]:  # fmt: skip
    """Which GOPs ``[points[j], points[j + 1]]`` a keyframe-first scan decodes: those whose
    keyframes differ by ``candidate`` or more (``key_steps[j]``), unless ``sizes`` (every
    frame's packet size, presentation order; None: unknown, decode them all) say the change is
    sustained motion: no packet event inside (``_packets_show_an_event``), an end keyframe on
    the file's regular grid, and a change under ``motion_ratio`` times the smaller of its
    neighbours' (GOPs of at least half the regular length). Pure numpy: unit-tested on tables."""
    points = np.asarray(points, np.int64)
    steps_ = np.asarray(key_steps, np.float64)
    big = [int(j) for j in np.flatnonzero(steps_ >= settings.candidate)]
    if sizes is None or len(points) < 3:
        return big
    sizes = np.asarray(sizes)
    lengths = np.diff(points)
    regular = float(np.median(lengths))
    out = []
    for j in big:
        a, b = int(points[j]), int(points[j + 1])
        if _packets_show_an_event(sizes[a + 1 : b], settings):
            out.append(j)
            continue
        if b < len(sizes) - 1 and lengths[j] < 0.9 * regular:  # (the file's last frame is no keyframe)
            out.append(j)  # a keyframe off the grid: the encoder saw a scene change there
            continue
        near = [steps_[k] for k in (j - 1, j + 1) if 0 <= k < len(steps_) and lengths[k] >= 0.5 * regular]
        if not near or steps_[j] >= settings.motion_ratio * min(near):
            out.append(j)
    return out


def scan(read, num_frames: int, fps: float, frame_starts: np.ndarray, table: KeyframeTable | None = None,
         settings: ShotSettings = DEFAULT_SETTINGS, sizes: np.ndarray | None = None, read_runs=None) -> ShotScan:  # fmt: skip
    """Find the cuts of a video whose frames ``read(indices)`` returns (uint8 ``(n, h, w, 3)``,
    small); ``frame_starts`` are the frames' start times. Keyframe-first when ``table`` allows
    (``keyframe_points``), else sequential. ``sizes``: every frame's packet size in
    presentation order, which lets the keyframe-first scan skip GOPs of sustained motion
    (``gops_to_decode``) and the last frame. ``read_runs``: reads runs of consecutive frames
    (a decoder that keeps its state from one run to the next); default ``read``."""
    return _drain(scan_stream(read, num_frames, fps, frame_starts, table, settings, sizes, read_runs))


def _drain(steps_):
    """Run a generator to its end; its return value."""
    while True:
        try:
            next(steps_)
        except StopIteration as done:
            return done.value


def scan_stream(read, num_frames: int, fps: float, frame_starts: np.ndarray, table: KeyframeTable | None = None,
                settings: ShotSettings = DEFAULT_SETTINGS, sizes: np.ndarray | None = None, read_runs=None):  # fmt: skip
    """``scan`` as it goes: yields ``(frontier, cuts)`` whenever the cuts at frames up to
    ``frontier`` are final (``cuts``: those frames, sorted), and returns the ``ShotScan``.

    Why it is exact: a cut's tests look at most ``window_s`` and ``flash_s`` around it, so a
    candidate is final once the frames that far past it are read; and ``select_cuts`` only lets
    candidates closer than ``min_shot_s`` compete, so when no candidate lies in the last
    ``min_shot_s`` before the frontier, no later candidate can change the choice among the
    earlier ones. A segment plan can then be made for the shots before the frontier while the
    rest of the file is still being read (``segmenting.final_plans``)."""
    result = ShotScan()
    if num_frames < 2:
        return result
    read_runs = read_runs or read
    fps = fps if fps and np.isfinite(fps) and fps > 0 else 25.0
    gap = max(1, int(round(settings.min_shot_s * fps)))
    if sizes is not None and len(sizes) != num_frames:
        sizes = None  # another numbering of the frames: decode every candidate
    points = keyframe_points(table, num_frames, fps, settings, last=sizes is None)
    candidates: list[tuple[int, float]] = []

    def settled(frontier: int) -> list[int] | None:
        """The final cuts up to ``frontier`` when no candidate is still open near it."""
        if frontier >= num_frames - 1:
            return select_cuts(candidates, num_frames, fps, settings)
        if any(frontier - gap <= c <= frontier for c, _s in candidates):
            return None
        return select_cuts(candidates, num_frames, fps, settings)

    if points is None:
        w = max(2, int(round(settings.window_s * fps)))
        flash = max(1, int(round(settings.flash_s * fps)))
        margin = w + flash + 2  # a step's tests look this far either side
        hists = np.zeros((num_frames, 3 * BINS), np.uint32)
        done = 0  # steps [0, done) are decided (step i: frame i to frame i + 1)
        for a in range(0, num_frames, settings.chunk):
            idx = list(range(a, min(num_frames, a + settings.chunk)))
            hists[a : a + len(idx)] = histograms(read(idx))
            result.decoded += len(idx)
            read_to = a + len(idx)
            end = num_frames - 1 if read_to == num_frames else read_to - margin
            if end <= done:
                continue
            lo = max(0, done - margin)
            found = find_cuts(hists[lo:read_to], fps, settings, first=lo)
            candidates += [c for c in found if done < c[0] <= end]
            done = end
            cuts = settled(done)
            if cuts is not None:
                yield done, cuts
    else:
        result.method = "keyframes"
        hk = np.concatenate(
            [histograms(read(points[a : a + settings.chunk].tolist())) for a in range(0, len(points), settings.chunk)]
        )
        result.decoded += len(points)
        chosen = set(gops_to_decode(points, steps(hk), sizes, settings))
        for j in range(len(points) - 1):
            if j in chosen:
                found, decoded = _scan_gop(read_runs, int(points[j]), int(points[j + 1]), hk[j + 1], fps, settings)
                candidates += found
                result.decoded += decoded
            cuts = settled(int(points[j + 1]))
            if cuts is not None:
                yield int(points[j + 1]), cuts
        tail = int(points[-1])
        if tail < num_frames - 1 and _packets_show_an_event(sizes[tail + 1 :], settings):
            # (only without the last frame, i.e. with sizes: its GOP holds something; read it whole)
            found, decoded = _scan_gop(read_runs, tail, num_frames - 1, None, fps, settings)
            candidates += found
            result.decoded += decoded
    result.cuts = select_cuts(candidates, num_frames, fps, settings)
    starts = np.asarray(frame_starts, np.float64)
    result.times = [round(float(starts[c] - starts[0]), 3) for c in result.cuts]
    return result


def _scan_gop(read, a: int, b: int, end: np.ndarray | None, fps: float, settings: ShotSettings) -> tuple[list[tuple[int, float]], int]:
    """Candidate cuts between keyframes ``a`` and ``b`` (whose histogram is ``end``), decoded in
    half-second pieces. Decoding stops early once the picture already looks like ``b`` and no
    big step is still waiting for its flash test: the rest of the GOP leads to ``b`` without a
    cut (a cut there would have to leave ``b``'s picture and come back within the GOP).
    ``end`` None (the file's last GOP, its last frame not read): read to ``b``."""
    flash = max(1, int(round(settings.flash_s * fps)))
    piece = max(flash + 2, int(round(0.5 * fps)))
    parts: list[np.ndarray] = []
    pos = a
    while pos <= b:
        idx = list(range(pos, min(b, pos + piece - 1) + 1))
        parts.append(histograms(read(idx)))
        pos = idx[-1] + 1
        if pos > b:
            break
        hists = np.concatenate(parts)
        recent = steps(hists[-flash - 2 :])
        if end is not None and float(distance(hists[-1], end)) < settings.threshold / 2 and not (recent >= settings.threshold).any():
            break
    hists = np.concatenate(parts)
    return find_cuts(hists, fps, settings, first=a), len(hists)


def detect_shots(path: str, table: KeyframeTable | None = None, *, threads: int = 1,
                 settings: ShotSettings = DEFAULT_SETTINGS) -> ShotScan:  # fmt: skip
    """Scan a file for cuts, decoding at ``settings.side`` pixels. ``table``: the file's keyframes
    as the caller's reader numbers them (None: read sequentially); used only when this reader
    counts the same frames. Raises ``DecodeError`` when the file cannot be read."""
    return _drain(stream_shots(path, table, threads=threads, settings=settings))


#: Keyframes a scan hands to the caller's reader at most (``stream_shots(share=...)``): those of
#: the first two minutes of 2 s GOPs (the scan reads every keyframe before anything else).
SHARED_KEYFRAMES = 64


def stream_shots(path: str, table: KeyframeTable | None = None, *, threads: int = 1,
                 settings: ShotSettings = DEFAULT_SETTINGS,
                 share: tuple[VideoReader, dict[int, np.ndarray]] | None = None):  # fmt: skip
    """``detect_shots`` as it goes: yields ``(frontier, cut_times)`` whenever the cuts up to frame
    ``frontier`` are final (``scan_stream``; times in seconds from the first frame), returns the
    ``ShotScan``. Its readers stay open until it is exhausted or closed.

    ``share``: ``(reader, frames)``, the caller's reader of the same file and a dict. The
    keyframes the scan decodes go into ``frames`` as that reader returns them too (the same
    pixels: ``VideoReader.get_also``; at most ``SHARED_KEYFRAMES``), so that the caller need not
    decode them again (a fast plan samples keyframes; on 1080p each costs 13-28 ms)."""
    from .decode import VideoReader
    from .pyav_reader import sizes_from_index

    with VideoReader(path, settings.side, "squash", threads=threads) as reader:
        info = reader.info
        starts = np.asarray(info.frame_times[:, 0], np.float64)
        if table is not None and table.num_frames != info.num_frames:
            table = None  # another decoder's numbering: do not guess, read sequentially
        reader.use_keyframes(table)
        sizes = None
        if table is not None:
            sizes = sizes_from_index(reader.decoder_path, reader.header.stream_index, info.num_frames, table.keys)
        runs: list[VideoReader] = []
        read_runs = None
        # Keyframes one by one through planned reads (a keyframe decodes alone: half decord's CPU
        # on 1080p), runs of frames through the usual decoder, which keeps its state from one
        # half-second piece to the next (planned reads would start each at its keyframe); where
        # decord's seeks return other frames (open GOPs, MPEG-TS), through the planned reader's
        # forward runs, which keep theirs too (``GopReader.get_run``).
        if table is not None and reader.read_by_gop(table):
            if reader.decord_seeks_right:

                def read_runs(idx: list[int]) -> np.ndarray:
                    if not runs:
                        runs.append(VideoReader(path, settings.side, "squash", threads=threads))
                        runs[0].use_keyframes(table)
                    return runs[0].get(idx)

            else:
                read_runs = reader.get_run  # (the decoder goes on from one piece to the next)

        read = reader.get
        if share is not None and read_runs is not None and keyframe_points(table, info.num_frames, info.fps, settings) is not None:
            other, kept = share

            def read(idx: list[int]) -> np.ndarray:  # (the keyframes: runs go through read_runs)
                frames, also = reader.get_also(idx, other)
                for i in sorted(also)[: max(0, SHARED_KEYFRAMES - len(kept))]:
                    kept[i] = also[i]
                return frames

        try:
            gen = scan_stream(read, info.num_frames, info.fps, starts, table, settings, sizes, read_runs)
            while True:
                try:
                    frontier, cuts = next(gen)
                except StopIteration as done:
                    return done.value
                for r in (reader, *runs):
                    r.park()  # the caller decodes meanwhile: no decord thread spinning beside it
                yield frontier, [round(float(starts[c] - starts[0]), 3) for c in cuts]
        finally:
            for r in runs:
                r.close()
