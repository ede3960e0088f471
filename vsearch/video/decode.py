"""Probing and decoding video files: decord first, PyAV when decord cannot.

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
from dataclasses import dataclass

import numpy as np

from ..errors import DecodeError
from .sampling import frame_times_from_fps

#: Refuse frame sizes beyond 8K: a corrupt header claiming 60000x60000 must not allocate 10 GB.
MAX_PIXELS = 7680 * 4320
#: Refuse durations beyond a week: absurd metadata, not a video we can sample meaningfully.
MAX_DURATION_S = 7 * 24 * 3600.0


@dataclass
class VideoInfo:
    num_frames: int
    fps: float
    duration: float
    width: int
    height: int
    codec: str
    backend: str  # "decord" or "pyav"
    frame_times: np.ndarray  # (num_frames, 2) start/end seconds per frame

    def as_dict(self) -> dict:
        return {
            "num_frames": self.num_frames,
            "fps": self.fps,
            "duration": self.duration,
            "width": self.width,
            "height": self.height,
            "codec": self.codec,
            "backend": self.backend,
        }


def decode_size(src_w: int, src_h: int, image_size: int, resize: str) -> tuple[int, int]:
    """The (width, height) to decode at so that only a centre crop (or nothing) remains.

    ``squash`` scales straight to ``image_size`` square (CLIP-ViP's transform); ``crop`` scales
    the short side to ``image_size`` and keeps the aspect ratio (CLIP's processor), leaving a
    centre crop to the transform.
    """
    if resize == "squash":
        return image_size, image_size
    if resize == "crop":
        if src_w <= 0 or src_h <= 0:
            return image_size, image_size
        scale = image_size / min(src_w, src_h)
        return max(image_size, round(src_w * scale)), max(image_size, round(src_h * scale))
    raise ValueError(f"unknown resize mode {resize!r} (expected 'squash' or 'crop')")


@dataclass(frozen=True)
class Header:
    codec: str
    width: int  # stored (coded) size
    height: int
    fps: float
    frames: int
    duration: float
    stream_index: int
    #: Sample aspect ratio (pixel width / pixel height); 1.0 for square pixels.
    sar: float = 1.0
    #: The chosen stream is the file's first video stream (the one decord opens).
    first_video: bool = True
    #: A file cut short (its index names frames whose data lies past the end): the share of
    #: frames missing, and the last moment (seconds from the first frame) whose data is there.
    missing_fraction: float = 0.0
    complete_until: float | None = None
    #: How stored frames become what a player shows (``orient``): "", "clock", "cclock",
    #: "clock_flip", "cclock_flip", optionally followed by "+hflip" / "+vflip".
    orientation: str = ""

    @property
    def transposed(self) -> bool:
        return self.orientation.split("+")[0] in ("clock", "cclock", "clock_flip", "cclock_flip")

    @property
    def display_size(self) -> tuple[int, int]:
        """(width, height) as a player shows it: square pixels, rotation applied."""
        w = max(1, round(self.width * self.sar))
        return (self.height, w) if self.transposed else (w, self.height)


def pick_video_stream(container):
    """The video stream a player would show: never cover art or a thumbnail track (attached
    pictures), and the default-flagged one when there are several real video streams."""
    real = [s for s in container.streams.video if not _is_attached_pic(s)]
    if not real:
        return None
    default = [s for s in real if _disposition(s, "default")]
    return (default or real)[0]


def _disposition(stream, flag: str) -> bool:
    import av

    try:
        return bool(stream.disposition & getattr(av.stream.Disposition, flag))
    except (AttributeError, TypeError):
        return False


def _is_attached_pic(stream) -> bool:
    return _disposition(stream, "attached_pic") or _disposition(stream, "timed_thumbnails")


def orientation_from_matrix(m) -> str:
    """FFmpeg's autorotate rules (fftools), from a display matrix of 9 int32 (16.16 fixed point)."""
    if m is None or len(m) < 9:
        return ""
    a, b = m[0] / 65536.0, m[1] / 65536.0
    c, d = m[3] / 65536.0, m[4] / 65536.0
    s0, s1 = math.hypot(a, c), math.hypot(b, d)
    if not s0 or not s1:
        return ""
    theta = math.degrees(math.atan2(b / s1, a / s0)) % 360.0  # clockwise display rotation
    if abs(theta - 90) < 1.0:
        return "cclock_flip" if m[3] > 0 else "clock"
    if abs(theta - 270) < 1.0:
        return "clock_flip" if m[3] < 0 else "cclock"
    if abs(theta - 180) < 1.0:
        return "+".join(x for x, on in (("", True), ("hflip", m[0] < 0), ("vflip", m[4] < 0)) if on)
    if theta < 1.0 or theta > 359.0:
        return "+vflip" if m[4] < 0 else ""
    return ""  # a non-right angle: shown unrotated (players differ too)


def orient(frames: np.ndarray, orientation: str) -> np.ndarray:
    """Apply ``orientation`` to ``(n, h, w, 3)`` frames (the stored pixels) → what a player shows."""
    if not orientation:
        return frames
    base, *flips = orientation.split("+")
    if base == "clock":
        frames = np.rot90(frames, -1, axes=(1, 2))
    elif base == "cclock":
        frames = np.rot90(frames, 1, axes=(1, 2))
    elif base == "cclock_flip":
        frames = frames.transpose(0, 2, 1, 3)
    elif base == "clock_flip":
        frames = frames[:, ::-1, ::-1].transpose(0, 2, 1, 3)
    if "hflip" in flips:
        frames = frames[:, :, ::-1]
    if "vflip" in flips:
        frames = frames[:, ::-1]
    return np.ascontiguousarray(frames)


def _truncation(stream, path: str) -> tuple[float, float | None]:
    """(share of frames whose data lies past the end of the file, last complete moment in seconds).

    A container whose index sits at the front (faststart MP4) still lists every frame of a file
    that was cut short; decoders then repeat the last good frame for the rest without a word.
    The index entries' byte ranges against the file size tell, without reading the data.
    """
    try:
        entries = stream.index_entries
        size = os.path.getsize(path)
    except (AttributeError, OSError):
        return 0.0, None
    if not entries or len(entries) == 0:
        return 0.0, None
    inside = [e for e in entries if e.pos + e.size <= size]
    missing = 1.0 - len(inside) / len(entries)
    if missing <= 0 or stream.time_base is None:
        return 0.0, None
    first = min(e.timestamp for e in entries)
    until = max((e.timestamp for e in inside), default=first)
    return missing, float((until - first) * stream.time_base)


def _display_matrix(container, stream) -> list[int] | None:
    """The display matrix of the first decoded frame (PyAV exposes it per frame)."""
    import av

    try:
        for frame in container.decode(stream):
            for sd in frame.side_data:
                if "DISPLAYMATRIX" in str(getattr(sd, "type", "")):
                    return np.frombuffer(bytes(sd), dtype="<i4").tolist()
            return None
    except (av.FFmpegError, ValueError):
        return None
    return None


def _header(path: str) -> Header:
    """Codec, size, rate, count, duration, the stream to use, pixel aspect and rotation (PyAV)."""
    import av

    try:
        with av.open(path) as container:
            stream = pick_video_stream(container)
            if stream is None:
                kinds = sorted({s.type for s in container.streams}) or ["none"]
                pics = " (only cover art)" if container.streams.video else ""
                raise DecodeError(path, f"no video stream{pics} (streams: {', '.join(kinds)})")
            ctx = stream.codec_context
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            fps = float(rate) if rate else 0.0
            if stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                duration = container.duration / 1_000_000
            else:
                duration = 0.0
            sar_q = ctx.sample_aspect_ratio
            sar = float(sar_q) if sar_q and float(sar_q) > 0 else 1.0
            header = Header(
                ctx.name or "unknown", int(ctx.width or 0), int(ctx.height or 0), fps, int(stream.frames or 0), duration,
                stream.index, sar if 0.1 < sar < 10 else 1.0, stream.index == container.streams.video[0].index,
            )  # fmt: skip
            missing, until = _truncation(stream, path)
            if missing:
                from dataclasses import replace

                header = replace(header, missing_fraction=missing, complete_until=until)
            if header.width and header.height:
                orientation = orientation_from_matrix(_display_matrix(container, stream))
                if orientation:
                    from dataclasses import replace

                    header = replace(header, orientation=orientation)
            return header
    except DecodeError:
        raise
    except (av.FFmpegError, ValueError, OSError, UnicodeDecodeError) as exc:
        raise DecodeError(path, _av_reason(exc)) from None


def _av_reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    low = text.lower()
    if isinstance(exc, PermissionError) or "permission denied" in low:
        return "permission denied"
    if isinstance(exc, FileNotFoundError) or "no such file" in low:
        return "file disappeared before it could be read"
    if "invalid data" in low or "moov atom not found" in low:
        return "not a readable video (invalid data: truncated or not a media file)"
    return f"cannot open: {text}"


class VideoReader:
    """An open video: ``info`` plus ``get(indices)`` returning uint8 ``(n, h, w, 3)`` frames.

    Frames come out at ``size`` (width, height) when given, scaled by the decoder itself.
    Opening checks what can be checked cheaply (video stream present, sane size and duration),
    so a bad file fails here with a one-line reason rather than deep in decoding.
    """

    def __init__(self, path: str, image_size: int | None = None, resize: str = "squash", backend: str = "auto"):
        self.path = path
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
        hdr = _header(self._open_path)
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
        self._av = None
        errors = []
        if hdr.orientation and backend != "pyav":
            # decord2 applies the rotation itself (and returns malformed 4-channel frames at full
            # size), but not every flip: rotated files go to PyAV, whose frames we turn upright.
            if backend == "decord":
                raise DecodeError(path, f"decord cannot decode rotated video ({hdr.orientation}) reliably; use PyAV")
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
        kwargs = {"ctx": decord.cpu(0), "num_threads": 1}
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
            raise DecodeError(self.path, _decord_reason(exc)) from None
        if n and times[0, 0] != 0.0:
            # Player time starts at the first frame (MPEG-TS, edited MP4s start later).
            times = times - times[0, 0]
        if self.header.complete_until is not None:
            keep = int(np.searchsorted(times[:, 0], self.header.complete_until + 1e-6, side="right"))
            if 0 < keep < n:
                times, n = times[:keep], keep
        times, note = _repair_times(times, fps, self._header_fps)
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
        self.info = VideoInfo(n, fps, duration, w, h, self._codec, "decord", times)

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
        self._av = _PyAVSequential(self._open_path, self._decode_size, self.header.stream_index)
        self.info = VideoInfo(frames, fps, frames / fps, w, h, self._codec, "pyav", frame_times_from_fps(frames, fps))

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        """Shape of a frame as the decoders return it (stored orientation)."""
        w, h = self._decode_size or self._src
        return (h, w, 3)

    def get(self, indices: list[int]) -> np.ndarray:
        """Decode the given frames, upright as a player shows them; out-of-range indices are
        clamped to the last frame."""
        return orient(self._get_stored(indices), self.header.orientation)

    def _get_stored(self, indices: list[int]) -> np.ndarray:
        n = self.info.num_frames
        idx = [min(max(int(i), 0), n - 1) for i in indices]
        if self._vr is not None:
            import decord

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
            self._av = _PyAVSequential(self._open_path, self._decode_size, self.header.stream_index)
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

    def close(self) -> None:
        self._vr = None
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


class _PyAVSequential:
    """Forward-only PyAV decoding that survives broken packets.

    Requests must come in increasing frame order (segments are decoded in order); going back
    reopens the file. Frames lost to broken packets shift later indices, which is acceptable
    for a fallback path whose alternative is losing the whole video.
    """

    def __init__(self, path: str, size: tuple[int, int] | None, stream_index: int | None = None):
        self.path, self.size = path, size
        self.stream_index = stream_index
        self._container = None
        self._frames = None
        self._pos = -1
        self._frame = None  # the av.VideoFrame at self._pos

    def _reopen(self) -> None:
        import av

        self.close()
        try:
            self._container = av.open(self.path)
        except (av.FFmpegError, OSError) as exc:
            raise DecodeError(self.path, _av_reason(exc)) from None
        stream = self._container.streams[self.stream_index] if self.stream_index is not None else self._container.streams.video[0]
        stream.thread_type = "AUTO"
        self._frames = self._iter_frames(stream)
        self._pos, self._frame = -1, None

    def _iter_frames(self, stream):
        import av

        for packet in self._container.demux(stream):
            try:
                frames = packet.decode()
            except av.FFmpegError:
                continue
            yield from frames

    def _to_array(self, frame) -> np.ndarray:
        if self.size:
            return frame.to_ndarray(format="rgb24", width=self.size[0], height=self.size[1])
        return frame.to_ndarray(format="rgb24")

    def get(self, idx: list[int]) -> np.ndarray:
        wanted = sorted(set(idx))
        if self._frames is None or wanted[0] < self._pos:
            self._reopen()
        got: dict[int, np.ndarray] = {}
        for target in wanted:
            while self._pos < target:
                frame = next(self._frames, None)
                if frame is None:
                    break
                self._pos, self._frame = self._pos + 1, frame
            if self._frame is None:
                break
            # At the target, or the last frame there is when the stream ended early.
            got[target] = self._to_array(self._frame)
        if not got:
            raise DecodeError(self.path, "no frame could be decoded")
        return np.stack([got.get(i, got[max(got)]) for i in idx])

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
        self._container = None
        self._frames = None


#: Fewer frames per second than this means the file's timing cannot be right for a video.
MIN_PLAUSIBLE_FPS = 0.1


def _repair_times(times: np.ndarray, fps: float, header_fps: float) -> tuple[np.ndarray, str | None]:
    """Evenly spaced times when the container's timestamps are unusable, and why.

    Unusable: non-finite or non-increasing, a frame rate of 0, or frames so sparse (under
    0.1 per second) that the header must be wrong. The header's rate is used if it is sane,
    else 25 fps.
    """
    n = len(times)
    span = float(times[-1, 1] - times[0, 0]) if n and np.all(np.isfinite(times)) else float("nan")
    bad = (
        not np.all(np.isfinite(times))
        or (n > 1 and times[-1, 0] <= times[0, 0])
        or not fps
        or not math.isfinite(fps)
        or fps <= 0
        or (n > 1 and span > 0 and n / span < MIN_PLAUSIBLE_FPS)
    )
    if not bad:
        return times, None
    rate = header_fps if header_fps and math.isfinite(header_fps) and MIN_PLAUSIBLE_FPS <= header_fps <= 1000 else 25.0
    return frame_times_from_fps(n, rate), f"the file's frame timing is unusable (fps {fps:g}); assumed {rate:g} fps"


def _decord_reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "Error reading" in text or "ERROR opening" in text.upper():
        return "decord cannot open it"
    return text[:200]


def center_crop(frames: np.ndarray, side: int) -> np.ndarray:
    """Centre ``side`` x ``side`` crop of ``(n, h, w, 3)`` frames (no-op when already square)."""
    h, w = frames.shape[1:3]
    if (h, w) == (side, side) or h < side or w < side:
        return frames
    top, left = (h - side) // 2, (w - side) // 2
    return np.ascontiguousarray(frames[:, top : top + side, left : left + side])
