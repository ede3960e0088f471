"""Cutting a moment out of a video file, so search results can be shared (``vsearch clip``).

Stream copy when the cut allows it: the start falls on a keyframe of the video stream (within
one frame), so the packets from there to the end can be copied as they are (no quality loss,
milliseconds). Otherwise the video is re-encoded (H.264) from the first frame at or after the
start, and audio is dropped (a re-encode here is about the picture). PyAV only: no ffmpeg
binary is needed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction

from ..errors import DecodeError, QueryError
from .decode import pick_video_stream


@dataclass
class CutResult:
    path: str
    start: float
    end: float
    mode: str  # "copy" or "reencode"


def cut(src: str | os.PathLike[str], out: str | os.PathLike[str], start: float, end: float) -> CutResult:
    """Write ``src`` between ``start`` and ``end`` seconds (player time) to ``out``."""
    import av

    src, out = os.fspath(src), os.fspath(out)
    if not os.path.isfile(src):
        raise QueryError(f"{src}: no such video file")
    if not (end > start >= 0):
        raise QueryError(f"the end ({end:g} s) must come after the start ({start:g} s), both at or after 0")
    if os.path.abspath(src) == os.path.abspath(out):
        raise QueryError("the output would overwrite the source video")
    try:
        with av.open(src) as probe:
            stream = pick_video_stream(probe)
            if stream is None:
                raise DecodeError(src, "no video stream")
            first = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
            frame_s = 1.0 / float(stream.average_rate or stream.guessed_rate or 25)
            keyframes = [float(p.pts * p.time_base) - first for p in probe.demux(stream) if p.is_keyframe and p.pts is not None]
    except av.FFmpegError as exc:
        raise DecodeError(src, f"cannot read ({exc})") from None
    os.makedirs(os.path.dirname(os.path.abspath(out)) or ".", exist_ok=True)
    tmp = f"{out}.part{os.getpid()}{os.path.splitext(out)[1]}"
    try:
        if any(abs(k - start) <= frame_s / 2 for k in keyframes):
            _copy(src, tmp, start + first, end + first)
            mode = "copy"
        else:
            _reencode(src, tmp, start + first, end + first)
            mode = "reencode"
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return CutResult(out, start, end, mode)


def _copy(src: str, out: str, start: float, end: float) -> None:
    import av

    with av.open(src) as inp, av.open(out, "w") as dst:
        streams = [s for s in inp.streams if s.type in ("video", "audio")]
        mapping = {s.index: dst.add_stream_from_template(s) for s in streams}
        offsets: dict[int, int] = {}
        for packet in inp.demux(streams):
            if packet.pts is None or packet.dts is None:
                continue
            t = float(packet.pts * packet.time_base)
            if t < start - 1e-6 or t >= end - 1e-6:
                continue
            off = offsets.setdefault(packet.stream.index, packet.dts)
            packet.pts -= off
            packet.dts -= off
            packet.stream = mapping[packet.stream.index]
            dst.mux(packet)


def _reencode(src: str, out: str, start: float, end: float) -> None:
    import av

    with av.open(src) as inp, av.open(out, "w") as dst:
        vin = pick_video_stream(inp)
        rate = vin.average_rate or vin.guessed_rate or Fraction(25)
        vout = dst.add_stream("libx264", rate=rate)
        vout.width, vout.height = vin.codec_context.width, vin.codec_context.height
        vout.pix_fmt = "yuv420p"
        vout.options = {"crf": "18", "preset": "veryfast"}
        n = 0
        for frame in inp.decode(vin):
            if frame.pts is None:
                continue
            t = float(frame.pts * frame.time_base)
            if t < start - 1e-6:
                continue
            if t >= end - 1e-6:
                break
            frame.pts = n
            frame.time_base = Fraction(1) / Fraction(rate)
            n += 1
            for packet in vout.encode(frame.reformat(format="yuv420p")):
                dst.mux(packet)
        for packet in vout.encode():
            dst.mux(packet)
    if n == 0:
        raise QueryError(f"no frame between {start:g} s and {end:g} s")
