"""Segment thumbnails: small JPEGs for the search page.

Made at index time from a frame the encoder was fed anyway (the middle of the segment's
sampled frames), so indexing decodes nothing twice. Frames for a "squash" model arrive
squeezed to a square; they are stretched back to the video's display aspect, so a card shows
the picture as a player would (at the model's resolution: a 224-px model gives 224-px-high
thumbnails). Stores indexed before thumbnails existed get them by ``vsearch thumbnails``
(decoding one frame per segment) or lazily from the server, cached outside the store.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

#: Longest side of a stored thumbnail, in pixels; JPEG quality.
MAX_SIDE = 320
QUALITY = 80


def encode_jpeg(frame: np.ndarray, aspect: float | None = None) -> tuple[bytes, int, int]:
    """``(h, w, 3)`` uint8 → JPEG bytes, width, height. With ``aspect`` (display width /
    height), the frame is resized to that aspect first (squashed model frames)."""
    from PIL import Image

    img = Image.fromarray(np.ascontiguousarray(frame))
    w, h = img.size
    if aspect and aspect > 0 and abs(w / h - aspect) > 0.02:
        w = max(1, round(h * aspect))
    scale = min(1.0, MAX_SIDE / max(w, h))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if size != img.size:
        img = img.resize(size, Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=QUALITY, optimize=True)
    return buf.getvalue(), size[0], size[1]


def middle(frames: np.ndarray) -> np.ndarray:
    """The frame a thumbnail shows: the middle of the segment's sampled frames (not frame 0)."""
    return frames[len(frames) // 2]


def decode_thumbnail(path: str, frame_index: int, aspect: float | None = None) -> tuple[bytes, int, int]:
    """Decode one frame of ``path`` (upright, display aspect) and encode it: for stores indexed
    before thumbnails existed."""
    from .video.decode import VideoReader

    with VideoReader(path, MAX_SIDE, "crop") as reader:
        frame = reader.get([frame_index])[0]
    return encode_jpeg(frame)


def cache_dir() -> Path:
    """Where lazily made thumbnails live (the store stays read-only for the server)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "vsearch" / "thumbnails"
