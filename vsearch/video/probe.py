"""Probing a video file before decoding it: codec, size, rate, duration, the stream a player
shows, pixel aspect, rotation, a file cut short; and repairing unusable frame timing.

PyAV reads the container; nothing here decodes more than the first frame (for its display
matrix) and nothing imports torch.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace

import numpy as np

from ..errors import DecodeError
from .orientation import orientation_from_matrix, transposes
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
    #: When the footage was recorded (POSIX seconds) from the container's creation_time tag.
    creation_time: float | None = None

    def as_dict(self) -> dict:
        return {
            "num_frames": self.num_frames,
            "fps": self.fps,
            "duration": self.duration,
            "width": self.width,
            "height": self.height,
            "codec": self.codec,
            "backend": self.backend,
            "creation_time": self.creation_time,
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
    #: The container's (or the stream's) creation_time tag as POSIX seconds; None when absent.
    created: float | None = None
    #: The container format as FFmpeg names it ("mov,mp4,m4a,3gp,3g2,mj2", "mpegts", ...).
    container: str = ""

    @property
    def transposed(self) -> bool:
        return transposes(self.orientation)

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


def read_header(path: str) -> Header:
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
                container=container.format.name or "",
            )  # fmt: skip
            missing, until = _truncation(stream, path)
            if missing:
                header = replace(header, missing_fraction=missing, complete_until=until)
            created = creation_time(container, stream)
            if created is not None:
                header = replace(header, created=created)
            if header.width and header.height:
                orientation = orientation_from_matrix(_display_matrix(container, stream))
                if orientation:
                    header = replace(header, orientation=orientation)
            return header
    except DecodeError:
        raise
    except (av.FFmpegError, ValueError, OSError, UnicodeDecodeError) as exc:
        raise DecodeError(path, av_reason(exc)) from None


def creation_time(container, stream) -> float | None:
    """POSIX seconds of the ``creation_time`` tag (container first, then the stream), as cameras
    and phones write it (ISO 8601, UTC); None when absent, unreadable or the epoch (muxers that
    write 1970-01-01 mean "unset")."""
    from datetime import UTC, datetime

    for meta in (getattr(container, "metadata", None), getattr(stream, "metadata", None)):
        text = (meta or {}).get("creation_time")
        if not text:
            continue
        try:
            when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        except ValueError:
            continue
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp()
        if seconds > 0:
            return seconds
    return None


def av_reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    low = text.lower()
    if isinstance(exc, PermissionError) or "permission denied" in low:
        return "permission denied"
    if isinstance(exc, FileNotFoundError) or "no such file" in low:
        return "file disappeared before it could be read"
    if "invalid data" in low or "moov atom not found" in low:
        return "not a readable video (invalid data: truncated or not a media file)"
    return f"cannot open: {text}"


#: Fewer frames per second than this means the file's timing cannot be right for a video.
MIN_PLAUSIBLE_FPS = 0.1


def repair_times(times: np.ndarray, fps: float, header_fps: float) -> tuple[np.ndarray, str | None]:
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


def decord_reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "Error reading" in text or "ERROR opening" in text.upper():
        return "decord cannot open it"
    return text[:200]
