"""A folder of hostile and unusual video files, for testing that indexing survives a real disk.

``write_corpus(folder)`` writes every case and returns what should happen to each: ``indexed``,
``failed`` (with a one-line reason), or ``either`` (partly damaged files: what is decodable may
be indexed with a warning). Used by the tests and by ``bench/reliability.py``.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .scenes import Scene, render_scene


@dataclass(frozen=True)
class Case:
    name: str  # file name (bytes allowed through os.fsdecode)
    expect: str  # "indexed" | "failed" | "either"
    what: str


def _clip(n: int = 30, w: int = 96, h: int = 64, seed: int = 0) -> np.ndarray:
    return render_scene(Scene("circle", "red", "left"), n, w, h, np.random.default_rng(seed))


def _write(path: Path, frames: np.ndarray, fps: int = 10, codec: str = "libx264", faststart: bool = False, fmt_opts=None) -> None:
    import av

    opts = {"movflags": "faststart"} if faststart else {}
    with av.open(os.fspath(path), "w", options=opts | (fmt_opts or {})) as c:
        s = c.add_stream(codec, rate=fps)
        s.width, s.height = frames.shape[2], frames.shape[1]
        s.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        if codec == "libx264":
            s.options = {"preset": "veryfast"}
        if codec == "libsvtav1":
            s.options = {"preset": "12"}
        if codec == "libx265":
            s.options = {"preset": "ultrafast", "x265-params": "log-level=none"}
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def _vfr(path: Path) -> None:
    """Frames at irregular timestamps (10 fps, then 30 fps, then gaps) in Matroska."""
    from fractions import Fraction

    import av

    frames = _clip(40)
    with av.open(os.fspath(path), "w") as c:
        s = c.add_stream("libx264", rate=30)
        s.width, s.height = frames.shape[2], frames.shape[1]
        s.pix_fmt = "yuv420p"
        s.codec_context.time_base = Fraction(1, 1000)
        t = 0
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(f, format="rgb24")
            vf.pts, vf.time_base = t, Fraction(1, 1000)
            t += 100 if i < 15 else (33 if i < 30 else 250)
            for p in s.encode(vf):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def _audio_only(path: Path) -> None:
    import av

    with av.open(os.fspath(path), "w") as c:
        s = c.add_stream("aac", rate=16000)
        s.layout = "mono"
        samples = (np.sin(np.arange(16000) / 10.0) * 0.3).astype(np.float32)[None]
        for i in range(0, 16000, 1024):
            chunk = samples[:, i : i + 1024]
            if chunk.shape[1] < 1024:
                break
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
            frame.sample_rate = 16000
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def _patch_box(path: Path, box: bytes, field_offset: int, value: int) -> None:
    """Overwrite a 32-bit big-endian field of the first ``box`` atom (after its type)."""
    data = bytearray(path.read_bytes())
    at = data.find(box)
    if at < 0:
        raise ValueError(f"no {box!r} box in {path}")
    data[at + 4 + field_offset : at + 8 + field_offset] = struct.pack(">I", value)
    path.write_bytes(bytes(data))


def write_corpus(folder: str | os.PathLike[str], good: int = 3) -> dict[str, Case]:
    """Write the cases into ``folder`` and return ``{path: Case}``."""
    d = Path(folder)
    d.mkdir(parents=True, exist_ok=True)
    cases: dict[str, Case] = {}

    def add(name: str | bytes, expect: str, what: str, make: Callable[[Path], None]) -> None:
        path = Path(os.fsdecode(os.path.join(os.fsencode(d), name if isinstance(name, bytes) else name.encode())))
        make(path)
        cases[str(path)] = Case(os.fsdecode(name) if isinstance(name, bytes) else name, expect, what)

    for i in range(good):
        add(f"good_{i}.mp4", "indexed", "a plain H.264 clip", lambda p, i=i: _write(p, _clip(seed=i)))
    add("zero_bytes.mp4", "failed", "an empty file", lambda p: p.write_bytes(b""))
    add("random_bytes.mp4", "failed", "random bytes", lambda p: p.write_bytes(np.random.default_rng(1).bytes(20000)))
    add("text_file.mp4", "failed", "a text file named .mp4", lambda p: p.write_text("not a video\n" * 200))

    def truncated(p: Path, keep: float, faststart: bool) -> None:
        _write(p, _clip(60), faststart=faststart)
        data = p.read_bytes()
        p.write_bytes(data[: int(len(data) * keep)])

    add("truncated_half.mp4", "failed", "cut at 50% (index at the end is lost)", lambda p: truncated(p, 0.5, False))
    add("truncated_in_header.mp4", "failed", "cut inside the header", lambda p: truncated(p, 0.02, True))
    add("truncated_faststart.mp4", "either", "header intact, half the data", lambda p: truncated(p, 0.5, True))

    def overwritten(p: Path) -> None:
        _write(p, _clip(60), faststart=True)
        data = bytearray(p.read_bytes())
        a, b = int(len(data) * 0.4), int(len(data) * 0.6)
        data[a:b] = np.random.default_rng(2).bytes(b - a)
        p.write_bytes(bytes(data))

    add("middle_overwritten.mp4", "either", "middle 20% overwritten", overwritten)
    add("audio_only.mp4", "failed", "an audio track, no video", _audio_only)
    add("one_frame.mp4", "indexed", "a single frame", lambda p: _write(p, _clip(1)))

    def zero_fps(p: Path) -> None:
        _write(p, _clip(20))
        _patch_box(p, b"mdhd", 12, 0)  # media timescale 0: no usable frame rate in the header

    def absurd(p: Path) -> None:
        _write(p, _clip(20))
        _patch_box(p, b"mvhd", 12, 1)  # timescale 1 ...
        _patch_box(p, b"mvhd", 16, 0xFFFFFFF0)  # ... and a duration of 136 years

    add("zero_fps.mp4", "either", "media timescale 0 in the header", zero_fps)
    add("absurd_duration.mp4", "either", "a 136-year duration in the header", absurd)
    add("huge_4k.mp4", "indexed", "3840x2160", lambda p: _write(p, _clip(3, 3840, 2160)))
    add("tiny_16x16.mp4", "indexed", "16x16 pixels", lambda p: _write(p, _clip(10, 16, 16)))
    add("portrait.mp4", "indexed", "portrait 64x112", lambda p: _write(p, _clip(20, 64, 112)))
    add("variable_rate.mkv", "indexed", "variable frame rate", _vfr)
    add("vp9.webm", "indexed", "VP9 in WebM", lambda p: _write(p, _clip(20), codec="libvpx-vp9"))
    add("mpeg4.avi", "indexed", "MPEG-4 Part 2 in AVI", lambda p: _write(p, _clip(20), codec="mpeg4"))
    add("mjpeg.mkv", "indexed", "Motion JPEG in Matroska", lambda p: _write(p, _clip(20), codec="mjpeg"))
    add("hevc.mp4", "indexed", "HEVC (H.265)", lambda p: _write(p, _clip(20), codec="libx265"))
    add("av1.mkv", "indexed", "AV1 (SVT-AV1)", lambda p: _write(p, _clip(20), codec="libsvtav1"))
    add("name with spaces.mp4", "indexed", "spaces in the name", lambda p: _write(p, _clip(10)))
    add("naïve vidéo 日本語.mp4", "indexed", "non-ASCII name", lambda p: _write(p, _clip(10)))
    add(b"bad\xff\xfename.mp4", "indexed", "a name that is not UTF-8", lambda p: _write(p, _clip(10)))
    loop = d / "loop"
    loop.mkdir(exist_ok=True)
    if not (loop / "again").exists():
        os.symlink(d, loop / "again")  # a symlink loop: the folder contains itself
    return cases
