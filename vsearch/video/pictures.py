"""Segment pictures: the frame a thumbnail shows, read at thumbnail size, encoded as a JPEG
worth looking at. Pure picture work on one file, used by the decode worker at index time
(``video.jobs``), by ``vsearch thumbnails`` and by the server's lazily made thumbnails.

A thumbnail is ``THUMB_WIDTH`` pixels wide (never wider than the video), aspect kept, at most
``MAX_BYTES``: twice the width a card is laid out at, so it stays sharp on HiDPI screens.
"""

from __future__ import annotations

import io
import math

import numpy as np

from .decode import VideoReader
from .probe import read_header

#: Width of a stored thumbnail in pixels (cards are laid out 220-320 CSS px wide: 2x for HiDPI).
THUMB_WIDTH = 640
#: Thumbnails narrower than this are upgraded by ``vsearch thumbnails --rebuild``.
MIN_WIDTH = 320
#: Largest JPEG stored; quality steps down until the picture fits.
MAX_BYTES = 40_000
QUALITIES = (82, 72, 62, 52, 42, 32)


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
    with the file's keyframes (PyAV then skips the GOPs between two requested frames), as
    shown where decord's seeks cannot be trusted (open GOPs, MPEG-TS)."""
    header = read_header(path)
    reader = VideoReader(path, thumbnail_decode_side(*header.display_size), "crop")
    if not reader.decord_seeks_right:
        reader.read_by_gop_as_shown()
    else:
        reader.use_keyframes(reader.keyframes())
    return reader


def decode_thumbnail(path: str, frame_index: int, aspect: float | None = None) -> tuple[bytes, int, int]:
    """Decode one frame of ``path`` (upright, display aspect) at thumbnail size and encode it:
    for the server's lazily made thumbnails."""
    with thumbnail_reader(path) as reader:
        frame = reader.get([frame_index])[0]
    return encode_jpeg(frame)
