"""Reading planned frames GOP by GOP with PyAV, decoding only what they need.

A sampled frame costs its decode from the keyframe before it, but not every frame in between:
a frame that nothing refers to (most B-frames) can be skipped unless it is itself wanted. Each
GOP of a read plan (``readplan.plan_reads``) is read from its keyframe with the decoder told,
packet by packet, to decode the wanted frames and to skip non-reference frames otherwise
(FFmpeg's ``skip_frame = NONREF``; a reference frame is never skipped, so every wanted frame
decodes exactly as in a full decode). Reading stops after the GOP's last wanted packet and the
decoder is drained, so nothing past it is decoded. Frames are told apart by presentation
timestamp, never by counting (skipped frames never come out).

On 1080p30 H.264 with 2 s GOPs and B-frames (one thread, a 30 s file) this decoded the exact
plan's 24 frames in 3.2 s of CPU against decord's 4.6 s, and the fast plan's in 1.5 s against
2.1 s. Frames are scaled as the reader they stand in for scales them: bicubically for decord
(its pixels within a few levels: mean 0.2-0.4 of 255 on camera footage), bilinearly for PyAV.

Used only where it is known to be right: a container listing every frame (its packets' pts
rank the frames as the caller numbers them) and closed GOPs; ``open`` returns None otherwise
and the caller keeps decord. No torch here.

Runs of consecutive frames read one after another (a shot scan's half-second pieces) go through
``get_run``, which leaves the decoder where it stopped: a planned read starts each piece at its
keyframe again, and on a 20 s open-GOP 1080p file the scan's decoder turned out 674 frames for
the 316 it asked for.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from ..errors import DecodeError
from .readplan import KeyframeTable, plan_reads
from .orientation import scaled_as_upright


@dataclass
class _Run:
    """A forward read left open for the next run (``GopReader.get_run``)."""

    packets: Iterator  # the demuxer, after the last packet sent
    key: int  # the last keyframe whose packet was sent (frame index)
    last: int = -1  # the last frame a run asked for
    lost: set[int] = field(default_factory=set)  # frames skipped or dropped: they never come out again
    ahead: dict[int, np.ndarray] = field(default_factory=dict)  # frames out before a run asked for them


class GopReader:
    """Planned reads of one video stream; frame ``i`` is the ``i``-th in presentation order."""

    def __init__(
        self, container, stream, pts: np.ndarray, keys: np.ndarray, size: tuple[int, int] | None, interpolation: str | None,
        orientation: str = "", key_dts: dict[int, int] | None = None,
    ):  # fmt: skip
        from av.video.reformatter import VideoReformatter

        self._container, self._stream = container, stream
        self._pts = pts
        self._rank = {int(p): i for i, p in enumerate(pts.tolist())}
        #: Keyframes as frame indices (presentation order).
        self.keys = keys
        self._table = KeyframeTable(keys, len(pts))  # (what reads are planned with)
        self._size, self._interpolation = size, interpolation
        #: A rotated file's frames are scaled as if upright (``orientation.scaled_as_upright``).
        self._orientation = orientation
        #: Each keyframe's decode timestamp, by its presentation timestamp (what a seek targets).
        self._key_dts: dict[int, int] = key_dts or {}
        self._scale = VideoReformatter()  # one scaler for every frame (its context is reused)
        self._picture_scale = VideoReformatter()  # (and one for pictures: another size)
        self._pictures: frozenset[int] = frozenset()
        self._picture_size: tuple[int, int] | None = None
        self._picture_out: dict[int, np.ndarray] = {}
        self._run: _Run | None = None
        #: Frames the decoder produced (a plan's cost).
        self.decoded = 0

    @classmethod
    def open(
        cls, path: str, stream_index: int, num_frames: int, size: tuple[int, int] | None, threads: int = 1,
        interpolation: str | None = None, orientation: str = "",
    ):  # fmt: skip
        """A reader for ``path``'s stream, or None when planned reads cannot be trusted on it:
        a packet without a timestamp, two frames with one, or not ``num_frames`` frames (the
        caller counts frames differently: decord trims a file cut short). ``interpolation``:
        swscale's (PyAV's name: "BICUBIC", ...; None: bilinear, PyAV's default)."""
        import av

        try:
            container = av.open(path)
        except (av.FFmpegError, OSError):
            return None
        try:
            stream = container.streams[stream_index]
            stream.thread_type = "AUTO"
            stream.codec_context.thread_count = max(1, int(threads))
            stamps, keys, key_dts = [], [], {}
            for packet in container.demux(stream):  # packets only: no decoding (30 ms for 60 MB)
                if packet.size == 0:
                    continue  # the demuxer's end-of-stream packet
                if packet.pts is None:
                    raise ValueError("a packet without a timestamp")
                stamps.append(packet.pts)
                if packet.is_keyframe:
                    keys.append(packet.pts)
                    key_dts[packet.pts] = packet.dts if packet.dts is not None else packet.pts
            pts = np.sort(np.asarray(stamps, dtype=np.int64))
            if len(pts) != num_frames or len(np.unique(pts)) != len(pts) or not keys:
                raise ValueError("frames do not match")
            key_idx = np.searchsorted(pts, np.sort(np.asarray(keys, dtype=np.int64)))
            return cls(container, stream, pts, key_idx.astype(np.int64), size, interpolation, orientation, key_dts)
        except (av.FFmpegError, OSError, IndexError, ValueError):
            container.close()
            return None

    @property
    def scaling(self) -> tuple[str | None, str]:
        """How frames are scaled: swscale's interpolation and the orientation scaled for. Two
        readers that agree on it give the same pixels for a frame at the same size."""
        return self._interpolation, self._orientation

    def get(self, idx: list[int]) -> np.ndarray:
        """Frames ``idx`` (uint8 ``(n, h, w, 3)``); ``DecodeError`` if any did not come out."""
        return self.get_with_picture(idx, None, None)[0]

    def get_with_picture(
        self, idx: list[int], picture: int | None, size: tuple[int, int] | None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Frames ``idx`` and, from the same decode, frame ``picture`` (one of ``idx``) scaled to
        ``size`` (a thumbnail at display resolution: no second read of that frame)."""
        frames, pictures = self.get_with_pictures(idx, () if picture is None else (picture,), size)
        return frames, pictures.get(picture) if picture is not None else None

    def get_with_pictures(
        self, idx: list[int], pictures, size: tuple[int, int] | None
    ) -> tuple[np.ndarray, dict[int, np.ndarray]]:
        """Frames ``idx`` and, from the same decode, each frame of ``pictures`` (some of ``idx``)
        scaled to ``size`` too, by frame index: a second size without a second read (a
        thumbnail; keyframes for another reader of the file)."""
        self._end_run()  # (planned reads seek)
        wanted = sorted(set(int(i) for i in idx))
        out: dict[int, np.ndarray] = {}
        self._pictures, self._picture_size, self._picture_out = frozenset(int(i) for i in pictures), size, {}
        try:
            for read in plan_reads(wanted, self._table):
                self._read_gop(read.key, set(read.frames), out)
            pics = self._picture_out
        finally:
            self._pictures, self._picture_out = frozenset(), {}
        return self._stacked(idx, out), pics

    def get_run(self, idx: list[int]) -> np.ndarray:
        """Frames ``idx`` (uint8 ``(n, h, w, 3)``) of a forward run, like ``get``, but the decoder
        is left where it stopped: a next run that goes on from there, in a GOP already entered,
        continues instead of decoding that GOP again from its keyframe. Frames after the first
        one asked for are all decoded (the next run wants them); a few that come out early are
        kept for it. Any other read (``get``) ends the run. ``DecodeError`` if a frame did not
        come out."""
        import av

        wanted = sorted(set(int(i) for i in idx))
        if not wanted:
            return np.zeros((0, 0, 0, 3), np.uint8)
        key = self._table.gop(wanted[0])[0]
        run = self._run
        if run is None or wanted[0] <= run.last or key > run.key or run.lost & set(wanted):
            self._end_run()
            try:
                packets = self._packets_from(key)
            except av.FFmpegError:
                packets = None
            run = self._run = _Run(packets, key) if packets is not None else None
            if run is None:
                raise DecodeError(self._container.name, f"frames {wanted[:3]} did not decode")
        out = {i: run.ahead.pop(i) for i in wanted if i in run.ahead}
        run.ahead = {i: f for i, f in run.ahead.items() if i > wanted[-1]}  # (those before: never asked for now)
        ctx = self._stream.codec_context
        left = set(wanted) - out.keys()
        try:
            while left:
                packet = next(run.packets, None)
                if packet is None or packet.size == 0:
                    ctx.skip_frame = "DEFAULT"
                    self._keep_run(ctx.decode(None), wanted, out, run)  # the end: what the decoder holds
                    self._end_run()
                    break
                i = self._rank.get(packet.pts)
                if i is not None and packet.is_keyframe:
                    run.key = max(run.key, i)
                # Before the first frame asked for (a run started at its keyframe): only what it
                # refers to. From there on every frame: the next run asks for the next ones.
                skip = i is not None and i < wanted[0] and run.last < 0
                ctx.skip_frame = "NONREF" if skip else "DEFAULT"
                if skip:
                    run.lost.add(i)
                self._keep_run(ctx.decode(packet), wanted, out, run)
                left = set(wanted) - out.keys()
        except av.FFmpegError:
            self._end_run()
        if self._run is not None:
            self._run.last = wanted[-1]
        return self._stacked(idx, out)

    def _stacked(self, idx: list[int], out: dict[int, np.ndarray]) -> np.ndarray:
        """Frames ``idx`` from ``out``; ``DecodeError`` naming those that did not come out."""
        missing = sorted({int(i) for i in idx} - out.keys())
        if missing:
            raise DecodeError(self._container.name, f"frames {missing[:3]} did not decode")
        return np.stack([out[int(i)] for i in idx])

    def _keep_run(self, decoded, wanted: list[int], out: dict[int, np.ndarray], run: _Run) -> None:
        for frame in decoded:
            self.decoded += 1
            i = self._rank.get(frame.pts)
            if i is None:
                continue
            if wanted[0] <= i <= wanted[-1]:
                out[i] = self._to_array(frame, self._size, self._scale)
            elif i > wanted[-1]:
                run.ahead[i] = self._to_array(frame, self._size, self._scale)
            else:
                run.lost.add(i)

    def _end_run(self) -> None:
        """Leave a forward run: the decoder forgets it (the next read seeks)."""
        if self._run is not None:
            self._run = None
            self._stream.codec_context.skip_frame = "DEFAULT"
            self._stream.codec_context.flush_buffers()

    def _packets_from(self, key: int) -> Iterator | None:
        """The stream's packets from keyframe ``key`` on, or None when the seek landed past it
        (the caller falls back). The decoder holds nothing then: every read flushes it as it ends.

        Seeks by the keyframe's decode timestamp: MPEG-TS seeks by those, and a seek to its
        presentation timestamp landed on the packets after it. Packets before the keyframe (a
        demuxer may land early) are passed over unread."""
        key_pts = int(self._pts[key])
        key_dts = int(self._key_dts.get(key_pts, key_pts))
        self._container.seek(key_dts, stream=self._stream, backward=True, any_frame=False)
        packets = self._container.demux(self._stream)
        for packet in packets:
            if packet.size == 0:
                return None
            if packet.pts == key_pts:
                return _chain(packet, packets)
            if packet.dts is not None and packet.dts > key_dts:
                return None
        return None

    def _read_gop(self, key: int, frames: set[int], out: dict[int, np.ndarray]) -> None:
        import av

        ctx = self._stream.codec_context
        try:
            packets = self._packets_from(key)
            if packets is None:
                return  # the seek landed past the keyframe: the frames stay missing (caller falls back)
            left = set(frames)
            for packet in packets:
                if packet.size == 0:
                    break
                i = self._rank.get(packet.pts)
                ctx.skip_frame = "DEFAULT" if i in left else "NONREF"  # a reference frame is never skipped
                self._keep(ctx.decode(packet), frames, out)
                left.discard(i)
                if not left:
                    break
            ctx.skip_frame = "DEFAULT"
            self._keep(ctx.decode(None), frames, out)  # drain: the frames the decoder still holds
        except av.FFmpegError:
            pass  # a broken packet: what did not come out is missing
        finally:
            ctx.flush_buffers()

    def _keep(self, decoded, frames: set[int], out: dict[int, np.ndarray]) -> None:
        for frame in decoded:
            self.decoded += 1
            i = self._rank.get(frame.pts)
            if i in frames and i not in out:
                out[i] = self._to_array(frame, self._size, self._scale)
                if i in self._pictures:
                    self._picture_out[i] = self._to_array(frame, self._picture_size, self._picture_scale)

    def _to_array(self, frame, size: tuple[int, int] | None, scaler) -> np.ndarray:
        if size is None:
            return frame.to_ndarray(format="rgb24")
        if self._orientation:
            return scaled_as_upright(frame, self._orientation, size, self._interpolation or "BICUBIC")
        w, h = size
        return scaler.reformat(frame, width=w, height=h, format="rgb24", interpolation=self._interpolation).to_ndarray()

    def close(self) -> None:
        self._run = None
        self._container.close()


def _chain(first, rest: Iterator) -> Iterator:
    """``first``, then what ``rest`` yields."""
    yield first
    yield from rest
