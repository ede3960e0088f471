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

import os
from collections.abc import Callable
from pathlib import Path

from .errors import VsearchError
from .video.pictures import MIN_WIDTH, encode_jpeg, thumbnail_reader


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
