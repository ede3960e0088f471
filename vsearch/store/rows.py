"""Small pieces the store's modules share: how vectors are packed into SQLite, the row types
queries return, and SQL helpers."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: The database file's name inside a store folder.
DB_NAME = "vsearch.db"
VECTOR_DTYPE = np.float16


def pack_vector(v: np.ndarray) -> bytes:
    return np.asarray(v, dtype=VECTOR_DTYPE).tobytes()


def unpack_vectors(blobs: Sequence[bytes], dim: int) -> np.ndarray:
    if not blobs:
        return np.zeros((0, dim), np.float32)
    return np.frombuffer(b"".join(blobs), dtype=VECTOR_DTYPE).reshape(len(blobs), dim).astype(np.float32)


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


def prefix_range(root: str) -> tuple[str, str]:
    """Bounds such that ``lo <= path < hi`` selects paths inside folder ``root`` (byte order)."""
    prefix = root.rstrip(os.sep) + os.sep
    hi = prefix[:-1] + chr(ord(os.sep) + 1)
    return prefix, hi


def chunks(seq: Sequence, n: int):
    for i in range(0, len(seq), n):
        yield seq[i : i + n]
