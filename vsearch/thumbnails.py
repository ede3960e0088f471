"""Segment thumbnails: JPEGs worth looking at on the search page.

Made at index time by the decode worker from a second, cheap read: the keyframe nearest the
middle of the segment's sampled frames, decoded at thumbnail size (``video.workers``). The
encoder's own frames were used before; at its resolution a card showed 57x32 px (32 px model)
or 114x64 (64 px model), unreadable. A thumbnail is ``THUMB_WIDTH`` pixels wide (never wider
than the video), aspect kept, at most ``MAX_BYTES``: twice the width a card is laid out at,
so it stays sharp on HiDPI screens (the page marks it ``2x``). Stores indexed before this, or
with ``--no-thumbnails``, get them by ``vsearch thumbnails`` (``--rebuild`` replaces small
ones) or lazily from the server, cached outside the store.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .errors import VsearchError
from .video.decode import VideoReader
from .video.probe import read_header
from .video.pyav_reader import has_open_gops

#: Width of a stored thumbnail in pixels (cards are laid out 220-320 CSS px wide: 2x for HiDPI).
THUMB_WIDTH = 640
#: Thumbnails narrower than this are upgraded by ``vsearch thumbnails --rebuild``.
MIN_WIDTH = 320
#: Largest JPEG stored; quality steps down until the picture fits.
MAX_BYTES = 40_000
QUALITIES = (82, 72, 62, 52, 42, 32)
#: Kept for callers of the old name: the longest side of a thumbnail before issue 24.
MAX_SIDE = THUMB_WIDTH


def thumbnail_decode_side(display_w: int, display_h: int, width: int = THUMB_WIDTH) -> int:
    """The short side to decode at ("crop" resize keeps the aspect) for a picture ``width``
    pixels wide, or the video's own size when it is smaller."""
    if display_w <= 0 or display_h <= 0:
        return width
    width = min(width, display_w)
    if display_w >= display_h:
        return max(1, math.ceil(width * display_h / display_w))
    return width


def encode_jpeg(frame: np.ndarray, aspect: float | None = None, max_width: int = THUMB_WIDTH) -> tuple[bytes, int, int]:
    """``(h, w, 3)`` uint8 → JPEG bytes, width, height: at most ``max_width`` wide and
    ``MAX_BYTES`` long. With ``aspect`` (display width / height) the frame is first stretched to
    that aspect (frames squashed to a square for a model)."""
    from PIL import Image

    img = Image.fromarray(np.ascontiguousarray(frame))
    w, h = img.size
    if aspect and aspect > 0 and abs(w / h - aspect) > 0.02:
        w = max(1, round(h * aspect))
    scale = min(1.0, max_width / w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if size != img.size:
        img = img.resize(size, Image.Resampling.BICUBIC)
    for quality in QUALITIES:
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=quality, optimize=True, progressive=True)
        if buf.tell() <= MAX_BYTES:
            break
    else:
        # Noise at full quality ladder still too big: halve the picture until it fits.
        while buf.tell() > MAX_BYTES and img.width > MIN_WIDTH:
            img = img.resize((max(MIN_WIDTH, img.width // 2), max(1, img.height // 2)), Image.Resampling.BICUBIC)
            buf = io.BytesIO()
            img.save(buf, format="JPEG", quality=QUALITIES[-1], optimize=True)
    return buf.getvalue(), img.width, img.height


def middle(frames: np.ndarray) -> np.ndarray:
    """The frame a thumbnail shows: the middle of the segment's sampled frames (not frame 0)."""
    return frames[len(frames) // 2]


def thumbnail_reader(path: str) -> VideoReader:
    """A reader of ``path`` that decodes upright frames at thumbnail size; it plans its reads
    with the file's keyframes (PyAV then skips the GOPs between two requested frames)."""
    header = read_header(path)
    reader = VideoReader(path, thumbnail_decode_side(*header.display_size), "crop")
    if not has_open_gops(reader.decoder_path, header.stream_index):  # (open GOPs reorder the table)
        reader.use_keyframes(reader.keyframes())
    return reader


def decode_thumbnail(path: str, frame_index: int, aspect: float | None = None) -> tuple[bytes, int, int]:
    """Decode one frame of ``path`` (upright, display aspect) at thumbnail size and encode it:
    for the server's lazily made thumbnails."""
    with thumbnail_reader(path) as reader:
        frame = reader.get([frame_index])[0]
    return encode_jpeg(frame)


def make_thumbnails(store, *, rebuild: bool = False, on_progress: Callable[[int, int], None] | None = None) -> tuple[int, int]:
    """Make the thumbnails ``store`` lacks; with ``rebuild`` also replace those narrower than
    ``MIN_WIDTH`` (stores indexed before issue 24). Returns (made, failed).

    One reader per video, its frames asked for in order: a forward-only decoder (PyAV: HEVC,
    rotated files) would otherwise start from the first frame for every segment.
    ``on_progress(done, total)`` is called after each segment."""
    todo = store.segments_without_thumbnail(narrower_than=MIN_WIDTH if rebuild else None)
    by_video: dict[str, list[tuple[int, int]]] = {}
    for sid, path, frame, _aspect in todo:
        by_video.setdefault(path, []).append((frame, sid))
    made = failed = done = 0
    batch: list[tuple[int, bytes, int, int]] = []
    for path, wanted in by_video.items():
        try:
            reader = thumbnail_reader(path)
        except VsearchError:
            failed += len(wanted)
            done += len(wanted)
            continue
        with reader:
            for frame, sid in sorted(wanted):
                try:
                    batch.append((sid, *encode_jpeg(reader.get([frame])[0])))
                except VsearchError:
                    failed += 1
                done += 1
                if on_progress:
                    on_progress(done, len(todo))
                if len(batch) >= 64:
                    made += store.put_thumbnails(batch)
                    batch = []
    made += store.put_thumbnails(batch)
    return made, failed


def cache_dir() -> Path:
    """Where lazily made thumbnails live (the store stays read-only for the server)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "vsearch" / "thumbnails"
