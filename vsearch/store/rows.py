"""Small pieces the store's modules share: how vectors are packed into SQLite, the row types
queries return, and SQL helpers."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .schema import Encoder

#: The database file's name inside a store folder.
DB_NAME = "vsearch.db"
VECTOR_DTYPE = np.float16


def pack_vector(v: np.ndarray) -> bytes:
    return np.asarray(v, dtype=VECTOR_DTYPE).tobytes()


def unpack_vectors(blobs: Sequence[bytes], dim: int, *, unit: bool = False) -> np.ndarray:
    """Stored vector blobs as ``(n, dim)`` float32 rows; ``unit``: scaled back to length 1
    (float16 storage leaves them unit only to ~1e-4), for cosines read straight from the store."""
    if not blobs:
        return np.zeros((0, dim), np.float32)
    v = np.frombuffer(b"".join(blobs), dtype=VECTOR_DTYPE).reshape(len(blobs), dim).astype(np.float32)
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12) if unit else v


@dataclass(frozen=True)
class EncoderRecord:
    """An encoder the store knows: its row id, name, where it came from, fingerprint and spec."""

    id: int
    name: str
    source: str | None
    fingerprint: str
    spec: dict


def record_of(row: Encoder) -> EncoderRecord:
    return EncoderRecord(row.id, row.name, row.source, row.fingerprint, dict(row.spec))


@dataclass
class SegmentWrite:
    """One segment of a video about to be committed."""

    idx: int
    start_s: float
    end_s: float
    start_frame: int
    end_frame: int
    frame_indices: list[int]
    vector: np.ndarray  # (dim,) float32, unit length
    #: (jpeg bytes, width, height), or None (``--no-thumbnails``).
    thumbnail: tuple[bytes, int, int] | None = None


@dataclass
class VideoWrite:
    """A whole video about to be committed: file identity, probe info and its segments."""

    path: str
    size: int
    mtime_ns: int
    content_hash: str
    info: dict  # duration, fps, num_frames, width, height, codec, backend
    segments: list[SegmentWrite]
    warnings: str | None = None


@dataclass
class KnownVideo:
    id: int
    size: int
    mtime_ns: int
    content_hash: str


@dataclass
class SegmentRow:
    segment_id: int
    video_id: int
    path: str
    idx: int
    start_s: float
    end_s: float
    duration: float
    #: When the footage was recorded (POSIX seconds UTC), None in rows read before 0004.
    recorded_at: float | None = None


def storable_text(text: str) -> str:
    """``text`` as valid UTF-8 for SQLite: a decoder message or a warning can quote a file name
    whose bytes are not UTF-8 (held as surrogate escapes); those bytes become ``\\xNN``."""
    return os.fsencode(text).decode("utf-8", "backslashreplace")


def prefix_range(root: str) -> tuple[str, str]:
    """Bounds such that ``lo <= path < hi`` selects paths inside folder ``root`` (byte order)."""
    prefix = root.rstrip(os.sep) + os.sep
    hi = prefix[:-1] + chr(ord(os.sep) + 1)
    return prefix, hi


def chunks(seq: Sequence, n: int):
    for i in range(0, len(seq), n):
        yield seq[i : i + n]
