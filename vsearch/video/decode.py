"""Decoding video files: decord first; PyAV for rotated files, HEVC, and when decord cannot.

Probing lives in ``probe``, orientation in ``orientation``, PyAV's reader in ``pyav_reader``,
read plans (which GOPs to decode for which frames) in ``readplan``.

This module never imports torch, so decode worker processes start fast and stay small. It
returns uint8 RGB arrays ``(n, h, w, 3)``; turning them into model pixels is
``vsearch.video.transforms``' job.

Facts this relies on (measured for this project): a decord ``VideoReader`` must not cross
a fork, so readers are opened by whoever decodes; ``decord.DECORDError`` is not a
``RuntimeError``; decord can scale while decoding; PyAV can skip broken packets.
"""

from __future__ import annotations

import math
import os
import weakref

import numpy as np

from ..errors import DecodeError
from .orientation import orient, orientation_from_matrix
from .probe import (
    MAX_DURATION_S,
    MAX_PIXELS,
    Header,
    VideoInfo,
    decode_size,
    decord_reason,
    pick_video_stream,
    read_header,
    repair_times,
)
from .gop_reader import GopReader
from .pyav_reader import PyAVSequential, has_open_gops, keyframes_from_index
from .readplan import KeyframeTable
from .sampling import frame_times_from_fps

__all__ = [
    "Header",
    "VideoInfo",
    "VideoReader",
    "center_crop",
    "decode_size",
    "orient",
    "orientation_from_matrix",
    "park_idle_readers",
    "pick_video_stream",
]

#: Every open reader of this process, for ``park_idle_readers``.
_OPEN: weakref.WeakSet[VideoReader] = weakref.WeakSet()


def park_idle_readers() -> int:
    """Park every reader of this process that decord read with since it was last parked
    (``VideoReader.park``); returns how many. For a decoder that is about to wait on its
    consumer: an idle decord2 reader keeps a core busy for as long as it stays open."""
    parked = 0
    for reader in list(_OPEN):
        if reader._decord_dirty:
            reader.park()
            parked += 1
    return parked


#: Codecs decord2 3.4 cannot seek in: HEVC with keyframes every 4 frames and B-frames came back
#: as the wrong frames (frame 6 for frames 0, 3, 6 and 9; a different wrong frame from run to
#: run) on every one of 5 tries, 8- and 10-bit, MP4 and MKV; H.264 (8 and 10-bit), VP9 and AV1
#: were right every time. A phone's HEVC has 1-2 s GOPs, so every sampled segment seeks.
SEEKS_WRONG = frozenset({"hevc"})


class VideoReader:
    """An open video: ``info`` plus ``get(indices)`` returning uint8 ``(n, h, w, 3)`` frames.

    Frames come out at ``size`` (width, height) when given, scaled by the decoder itself.
    Opening checks what can be checked cheaply (video stream present, sane size and duration),
    so a bad file fails here with a one-line reason rather than deep in decoding.
    """

    def __init__(self, path: str, image_size: int | None = None, resize: str = "squash", backend: str = "auto", threads: int = 1):
        self.path = path
        #: Decoder threads for this file (``decoder_threads``: the cores the worker pool leaves it).
        self.threads = max(1, int(threads))
        #: Frames that could not be decoded and were replaced by the nearest decoded one.
        self.substituted = 0
        #: Problems worked around while opening (shown as warnings of an indexed file).
        self.notes: list[str] = []
        self._alias_dir: str | None = None
        if not os.path.exists(path):
            raise DecodeError(path, "file disappeared before it could be read")
        if os.path.getsize(path) == 0:
            raise DecodeError(path, "empty file (0 bytes)")
        self._open_path = self._decodable_path(path)
        hdr = read_header(self._open_path)
        self.header = hdr
        codec, w, h, fps, header_frames, header_duration = hdr.codec, hdr.width, hdr.height, hdr.fps, hdr.frames, hdr.duration
        if w <= 0 or h <= 0:
            raise DecodeError(path, f"video stream has no frame size ({w}x{h})")
        if w * h > MAX_PIXELS:
            raise DecodeError(path, f"frame size {w}x{h} is beyond the supported maximum (8K)")
        if header_duration > MAX_DURATION_S:
            raise DecodeError(path, f"absurd duration in metadata ({header_duration:.0f} s)")
        # Sizes are chosen on the picture a player shows (square pixels, rotated); decoders scale
        # the stored frames, which are turned upright afterwards (``orient``).
        disp_w, disp_h = hdr.display_size
        shown = decode_size(disp_w, disp_h, image_size, resize) if image_size else (disp_w, disp_h)
        #: Output frame size (width, height), as shown.
        self.size = shown if image_size or hdr.sar != 1.0 else None
        #: What the decoders are asked for (stored orientation).
        self._decode_size = None if self.size is None else ((shown[1], shown[0]) if hdr.transposed else shown)
        self._codec, self._src = codec, (w, h)
        if hdr.missing_fraction:
            self.notes.append(
                f"the file is cut short: {100 * hdr.missing_fraction:.0f}% of its frames are missing; "
                f"indexed up to {hdr.complete_until:.1f} s"
            )
        self._header_fps = fps
        self._vr = None
        #: decord read since the last ``park`` (its thread is spinning).
        self._decord_dirty = False
        self._seeks_checked = False
        self._open_gops: bool | None = None
        _OPEN.add(self)
        self._av = None
        self._gop: GopReader | None = None
        self._keyframes: KeyframeTable | None = None
        errors = []
        if hdr.orientation and backend != "pyav":
            # decord2 applies the rotation itself (and returns malformed 4-channel frames at full
            # size), but not every flip: rotated files go to PyAV, whose frames we turn upright.
            if backend == "decord":
                raise DecodeError(path, f"decord cannot decode rotated video ({hdr.orientation}) reliably; use PyAV")
            backend = "pyav"
        if backend == "auto" and codec in SEEKS_WRONG:
            backend = "pyav"
        if backend in ("auto", "decord"):
            try:
                self._open_decord()
            except DecodeError as exc:
                errors.append(f"decord: {exc.reason}")
                if backend == "decord":
                    raise
        if self._vr is None:
            try:
                self._open_pyav(fps, header_frames, header_duration)
            except DecodeError as exc:
                errors.append(f"pyav: {exc.reason}")
                raise DecodeError(path, "; ".join(errors)) from None
        self.info.codec = codec

    # -- decord ------------------------------------------------------------------------------
    def _open_decord(self) -> None:
        import decord

        if not self.header.first_video:
            raise DecodeError(self.path, "the video to show is not the file's first video stream")
        kwargs = {"ctx": decord.cpu(0), "num_threads": self.threads}
        if self._decode_size:
            kwargs["width"], kwargs["height"] = self._decode_size
        try:
            vr = decord.VideoReader(self._open_path, **kwargs)
            n = len(vr)
            if n <= 0:
                raise DecodeError(self.path, "no decodable video frames")
            times = np.asarray(vr.get_frame_timestamp(np.arange(n)), dtype=np.float64).reshape(n, 2)
            fps = float(vr.get_avg_fps() or 0.0)
        except (RuntimeError, decord.DECORDError) as exc:
            raise DecodeError(self.path, decord_reason(exc)) from None
        if n and times[0, 0] != 0.0:
            # Player time starts at the first frame (MPEG-TS, edited MP4s start later).
            times = times - times[0, 0]
        if self.header.complete_until is not None:
            keep = int(np.searchsorted(times[:, 0], self.header.complete_until + 1e-6, side="right"))
            if 0 < keep < n:
                times, n = times[:keep], keep
        times, note = repair_times(times, fps, self._header_fps)
        if note:
            self.notes.append(note)
            fps = 1.0 / float(times[0, 1] - times[0, 0])
        duration = float(times[-1, 1] - times[0, 0]) if n else 0.0
        if duration > MAX_DURATION_S:
            raise DecodeError(self.path, f"absurd duration in timestamps ({duration:.0f} s)")
        if not fps or not math.isfinite(fps):
            fps = n / duration if duration > 0 else 0.0
        w, h = self.header.display_size
        self._vr = vr
        self.info = VideoInfo(n, fps, duration, w, h, self._codec, "decord", times, self.header.created)

    # -- PyAV --------------------------------------------------------------------------------
    def _open_pyav(self, fps: float, frames: int, duration: float) -> None:
        if fps <= 0 or not math.isfinite(fps):
            raise DecodeError(self.path, f"no usable frame rate ({fps})")
        if frames <= 0:
            frames = int(round(duration * fps))
        if frames <= 0:
            raise DecodeError(self.path, "frame count unknown and no duration")
        if self.header.complete_until is not None:
            frames = max(1, min(frames, int(self.header.complete_until * fps) + 1))
        w, h = self.header.display_size
        self._av = PyAVSequential(
            self._open_path, self._decode_size, self.header.stream_index, self.threads, self.header.orientation
        )
        self.info = VideoInfo(
            frames, fps, frames / fps, w, h, self._codec, "pyav", frame_times_from_fps(frames, fps), self.header.created
        )

    def keyframes(self) -> KeyframeTable | None:
        """The file's keyframes as frame indices of ``info`` (None when the file has no index).

        decord reports them in its own frame numbering; for PyAV the container's index entries
        are ranked by timestamp (presentation order), the numbering ``info`` counts in.
        """
        if self._vr is not None:
            import decord

            try:
                keys = list(self._vr.get_key_indices())
            except (RuntimeError, decord.DECORDError):
                return None
            return KeyframeTable.build(keys, self.info.num_frames) if keys else None
        keys = keyframes_from_index(self._open_path, self.header.stream_index, self.info.num_frames)
        return None if keys is None else KeyframeTable.build(keys, self.info.num_frames)

    @property
    def decoder_path(self) -> str:
        """The path the decoders open (an ASCII alias for a name that is not UTF-8)."""
        return self._open_path

    def use_keyframes(self, table: KeyframeTable | None) -> None:
        """Let the PyAV decoder plan its reads with ``table`` (fast sampling): GOPs from which no
        frame but the keyframe is wanted are not decoded. decord plans its own reads."""
        self._keyframes = table
        if self._av is not None:
            self._av.use_keyframes(None if table is None else table.keys)

    def read_by_gop(self, table: KeyframeTable | None) -> bool:
        """Read frames GOP by GOP from now on (``gop_reader``: wanted frames and the reference
        frames they need, nothing else), when ``table`` is this reader's keyframe table and the
        file's packets number the frames as this reader does; else keep decoding as before.
        Only where decord's table numbers keyframes as shown (the caller checks ``open_gops``;
        ``read_by_gop_as_shown`` otherwise). Returns whether it is on."""
        if table is None or self._gop is not None:
            return self._gop is not None
        gop = self._open_gop_reader()
        if gop is not None and not np.array_equal(gop.keys, table.keys):
            gop.close()  # another numbering of the frames: planned reads would fetch the wrong ones
            gop = None
        self._gop = gop
        return gop is not None

    def read_by_gop_as_shown(self) -> KeyframeTable | None:
        """Read GOP by GOP with the keyframes as the packets' timestamps rank them (the order
        frames are shown in), and return that table; None when planned reads cannot be trusted
        on this file (decoding stays as it was). For the files ``decord_seeks_right`` names.

        decord's table and the container index count keyframes in decode order, which open GOPs
        reorder, but a plan made in presentation order stays right: a frame shown just before a
        keyframe (a leading frame, which refers to the GOP before) is planned in the GOP before,
        and its read decodes on through that keyframe to it. Every frame of real open-GOP
        H.264 and HEVC files and of MPEG-TS files, read alone or in random sets, equals a full
        decode's (tests/test_readplan.py)."""
        if self._gop is None:
            self._gop = self._open_gop_reader()
        return None if self._gop is None else KeyframeTable.build(self._gop.keys.tolist(), self.info.num_frames)

    @property
    def decord_seeks_right(self) -> bool:
        """False where decord's seeks were measured to return other frames than a full decode:
        open GOPs (shifted by the leading frames: 2-3 on x264's open-gop) and MPEG-TS (a GOP
        late: frame i came back as frame i + 20 of a 2 s-GOP file, and the last frames as the
        last one). Those files read by GOP, planned with the keyframes as shown."""
        return not (self.header.container == "mpegts" or self.open_gops)

    @property
    def open_gops(self) -> bool:
        """Whether a frame after a keyframe in decode order is shown before it (``has_open_gops``,
        read once per reader)."""
        if self._open_gops is None:
            self._open_gops = has_open_gops(self._open_path, self.header.stream_index)
        return self._open_gops

    def _open_gop_reader(self) -> GopReader | None:
        # Scaled as the decoder it stands in for scales: decord bicubically, PyAV bilinearly.
        return GopReader.open(
            self._open_path, self.header.stream_index, self.info.num_frames, self._decode_size, self.threads,
            interpolation="BICUBIC" if self._vr is not None else None, orientation=self.header.orientation,
        )  # fmt: skip

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        """Shape of a frame as the decoders return it (stored orientation)."""
        w, h = self._decode_size or self._src
        return (h, w, 3)

    def get(self, indices: list[int]) -> np.ndarray:
        """Decode the given frames, upright as a player shows them; out-of-range indices are
        clamped to the last frame."""
        return orient(self._get_stored(indices), self.header.orientation)

    def _clamped(self, indices: list[int]) -> list[int]:
        """``indices`` inside the video: out-of-range ones clamped to the first or last frame."""
        n = self.info.num_frames
        return [min(max(int(i), 0), n - 1) for i in indices]

    def get_run(self, indices: list[int]) -> np.ndarray:
        """``get`` for runs of frames read forward one after another (a shot scan's half-second
        pieces): reading by GOP, the decoder goes on from where the last run stopped instead of
        decoding the GOP again from its keyframe (``GopReader.get_run``); else ``get``."""
        if self._gop is None:
            return self.get(indices)
        idx = self._clamped(indices)
        try:
            out = self._gop.get_run(idx)
            if out.shape[1:] == self.frame_shape:
                return orient(out, self.header.orientation)
        except DecodeError:
            pass
        return self.get(indices)  # (planned reads, and their fallbacks)

    def get_also(self, indices: list[int], other: VideoReader) -> tuple[np.ndarray, dict[int, np.ndarray]]:
        """``get(indices)`` and, from the same decode, each of those frames as ``other`` (another
        reader of this file, at another size) returns it, by frame index: the same pixels,
        because both read by GOP and scale alike. ``{}`` for them when that cannot be promised."""
        mine, theirs = self._gop, other._gop
        idx = self._clamped(indices)
        if (
            mine is None or theirs is None or other.info.num_frames != self.info.num_frames or not np.array_equal(mine.keys, theirs.keys)
            or mine.scaling != theirs.scaling
        ):  # fmt: skip
            return self.get(indices), {}
        try:
            frames, pics = mine.get_with_pictures(idx, idx, other._decode_size)
        except DecodeError:
            return self.get(indices), {}
        if frames.shape[1:] != self.frame_shape or any(p.shape != other.frame_shape for p in pics.values()):
            return self.get(indices), {}
        orientation = self.header.orientation
        return orient(frames, orientation), {i: orient(p[None], orientation)[0] for i, p in pics.items()}

    def get_with_picture(self, indices: list[int], picture: int, side: int) -> tuple[np.ndarray, np.ndarray | None]:
        """``get(indices)`` and, when reading by GOP and ``picture`` is one of ``indices``, that
        frame from the same decode at ``side`` pixels on its short side, aspect kept, upright
        (a thumbnail without a second read); else ``None`` for it."""
        if self._gop is None or picture not in indices or not 0 <= picture < self.info.num_frames:
            return self.get(indices), None
        w, h = decode_size(*self.header.display_size, side, "crop")
        stored = (h, w) if self.header.transposed else (w, h)
        idx = self._clamped(indices)
        try:
            frames, pic = self._gop.get_with_picture(idx, int(picture), stored)
        except DecodeError:
            return self.get(indices), None  # (the usual path, and its fallbacks)
        if frames.shape[1:] != self.frame_shape:
            return self.get(indices), None
        orientation = self.header.orientation
        return orient(frames, orientation), None if pic is None else orient(pic[None], orientation)[0]

    def _get_stored(self, indices: list[int]) -> np.ndarray:
        idx = self._clamped(indices)
        if self._vr is not None and self._gop is None and not self._seeks_checked:
            # Where decord's seeks return other frames, every reader (training, re-ranking) reads
            # by GOP instead: from the first get, before decord has read anything.
            self._seeks_checked = True
            if not self.decord_seeks_right:
                self.read_by_gop_as_shown()
        if self._gop is not None:
            try:
                out = self._gop.get(idx)
                if out.shape[1:] == self.frame_shape:
                    return out
            except DecodeError:
                pass
            self._gop.close()  # (a damaged region, a frame that did not come out: as before, for good)
            self._gop = None
        if self._vr is not None:
            import decord

            self._decord_dirty = True
            try:
                out = self._vr.get_batch(idx).asnumpy()
            except (RuntimeError, decord.DECORDError):
                out = self._get_one_by_one(idx)
            if out is not None and out.shape[1:] == self.frame_shape:
                return out
            # decord2 3.4.0 returns 4 or 6 "channels" (or a size error) for some small frame
            # sizes such as 16x16, 24x24, 48x48: hand this file to PyAV for good.
            self._vr = None
            self.info.backend = "pyav"
        if self._av is None:
            self._av = PyAVSequential(
                self._open_path, self._decode_size, self.header.stream_index, self.threads, self.header.orientation
            )
            self.use_keyframes(self._keyframes)
        return self._av.get(idx)

    def _get_one_by_one(self, idx: list[int]) -> np.ndarray | None:
        """Salvage a batch that decord could not decode whole (a damaged region of the file).

        Each frame is tried alone; a frame that fails is replaced by the nearest good one in the
        batch. None when no frame decodes properly (the caller then tries PyAV, which can skip
        broken packets).
        """
        import decord

        good: dict[int, np.ndarray] = {}
        for i in sorted(set(idx)):
            try:
                frame = self._vr[i].asnumpy()
            except (RuntimeError, decord.DECORDError):
                continue
            if frame.shape == self.frame_shape:
                good[i] = frame
        if not good:
            return None
        keys = np.array(sorted(good))
        self.substituted += sum(1 for i in idx if i not in good)
        return np.stack([good[int(keys[np.abs(keys - i).argmin()])] for i in idx])

    def _decodable_path(self, path: str) -> str:
        """A path the decoders can open. decord and PyAV encode ``str`` paths as UTF-8, so a name
        with non-UTF-8 bytes (valid on Linux) is opened through an ASCII-named symlink."""
        try:
            os.fsencode(path).decode("utf-8")
            return path
        except UnicodeDecodeError:
            import tempfile

            self._alias_dir = tempfile.mkdtemp(prefix="vsearch-")
            alias = os.path.join(self._alias_dir, "video" + os.path.splitext(os.fsencode(path))[1].decode("ascii", "replace"))
            os.symlink(os.path.abspath(path), alias)
            return alias

    def park(self) -> None:
        """Before this reader waits while other work goes on. After a read, decord2 keeps a
        thread spinning for as long as the reader stays open and idle (measured on 1080p H.264:
        1.95-1.99 CPU s in every 2 s of 10 s of idling, one decoder thread). That took a core
        from the other reader of a streamed shots job (+30 CPU s on an hour of 360p), and burns
        one per reader while a decoder waits on a slower consumer (``jobs.parking``). A seek to
        frame 0 stops it (8-9 ms); the next read seeks to what it needs anyway, unless it would
        have continued the last one."""
        self._decord_dirty = False
        if self._vr is not None:
            import decord

            try:
                self._vr.seek(0)
            except (RuntimeError, decord.DECORDError):
                pass

    def close(self) -> None:
        self._vr = None
        self._decord_dirty = False
        if self._gop is not None:
            self._gop.close()
            self._gop = None
        if self._av is not None:
            self._av.close()
            self._av = None
        if self._alias_dir is not None:
            import shutil

            shutil.rmtree(self._alias_dir, ignore_errors=True)
            self._alias_dir = None

    def __del__(self) -> None:
        if getattr(self, "_alias_dir", None):
            self.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def center_crop(frames: np.ndarray, side: int) -> np.ndarray:
    """Centre ``side`` x ``side`` crop of ``(n, h, w, 3)`` frames (no-op when already square)."""
    h, w = frames.shape[1:3]
    if (h, w) == (side, side) or h < side or w < side:
        return frames
    top, left = (h - side) // 2, (w - side) // 2
    return np.ascontiguousarray(frames[:, top : top + side, left : left + side])
