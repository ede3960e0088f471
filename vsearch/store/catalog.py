"""The store's read side for videos, segments and thumbnails: what is stored, where, and for
which file. Mixed into ``Store`` (the one entry point); every method reads through SQLAlchemy
sessions and writes nothing but thumbnails."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import numpy as np
from sqlalchemy import func, or_, select

from ..errors import QueryError
from ..filters import SearchFilter
from .base import StoreBase
from .rows import KnownVideo, SegmentRow, unpack_vectors
from .rows import chunks as _chunks
from .rows import prefix_range as _prefix_range
from .schema import Embedding, Failure, Segment, Thumbnail, Video


class Catalog(StoreBase):
    """Queries about stored videos and segments (``Store`` provides ``Session`` and ``encoder``)."""

    def count_videos(self) -> int:
        with self.Session() as s:
            return int(s.scalar(select(func.count()).select_from(Video)))

    def sampling(self) -> str | None:
        """How the stored videos' frames were chosen: "exact", "fast", "mixed" (some of each),
        or None for an empty store."""
        with self.Session() as s:
            modes = set(s.scalars(select(Video.sampling).distinct()))
        modes = {m or "exact" for m in modes}
        return None if not modes else modes.pop() if len(modes) == 1 else "mixed"

    def failed_files(self, roots: Sequence[str]) -> dict[str, tuple[int | None, int | None, str]]:
        """(size, mtime_ns, reason) of the files at or under ``roots`` whose last run failed."""
        out: dict[str, tuple[int | None, int | None, str]] = {}
        cols = (Failure.path, Failure.size, Failure.mtime_ns, Failure.reason)
        with self.Session() as s:
            for root in roots:
                lo, hi = _prefix_range(root)
                q = select(*cols).where((Failure.path == root) | ((Failure.path >= lo) & (Failure.path < hi)))
                for path, size, mtime, reason in s.execute(q):
                    out[path] = (size, mtime, reason)
        return out

    def known_videos(self, roots: Sequence[str]) -> dict[str, KnownVideo]:
        """Stored videos at or under each root (a root may be a file or a folder)."""
        out: dict[str, KnownVideo] = {}
        cols = (Video.id, Video.path, Video.size, Video.mtime_ns, Video.content_hash)
        with self.Session() as s:
            for root in roots:
                lo, hi = _prefix_range(root)
                q = select(*cols).where((Video.path == root) | ((Video.path >= lo) & (Video.path < hi)))
                for vid, path, size, mtime, chash in s.execute(q):
                    out[path] = KnownVideo(vid, size, mtime, chash)
        return out

    def list_videos(self, under: str | None = None) -> list[dict]:
        """Every stored video (or those under ``under``) with duration, segments, when it was
        indexed and whether its file is still there (one stat each)."""
        q = (
            select(Video.id, Video.path, Video.duration, Video.indexed_at, func.count(Segment.id))
            .outerjoin(Segment, Segment.video_id == Video.id)
            .group_by(Video.id)
            .order_by(Video.path)
        )
        if under is not None:
            lo, hi = _prefix_range(os.path.abspath(under))
            q = q.where((Video.path == os.path.abspath(under)) | ((Video.path >= lo) & (Video.path < hi)))
        with self.Session() as s:
            rows = s.execute(q).all()
        return [
            {
                "id": vid,
                "path": path,
                "duration": round(float(dur), 3),
                "segments": int(n),
                "indexed_at": at.isoformat(timespec="seconds") if at else None,
                "exists": os.path.exists(path),
            }  # fmt: skip
            for vid, path, dur, at, n in rows
        ]

    def thumbnail(self, segment_id: int) -> bytes | None:
        with self.Session() as s:
            return s.scalar(select(Thumbnail.jpeg).where(Thumbnail.segment_id == int(segment_id)))

    def put_thumbnails(self, rows: Sequence[tuple[int, bytes, int, int]]) -> int:
        """Store thumbnails made after indexing (``vsearch thumbnails``); returns how many."""
        with self.Session.begin() as s:
            for sid, jpeg, w, h in rows:
                s.merge(Thumbnail(segment_id=int(sid), jpeg=jpeg, width=int(w), height=int(h)))
        return len(rows)

    def thumbnail_source(self, segment_id: int) -> tuple[str, int] | None:
        """(path, frame) to make one segment's thumbnail from: the middle of its sampled frames."""
        enc = self.encoder()
        q = (
            select(Video.path, Embedding.frame_indices, Segment.start_frame)
            .join(Video, Video.id == Segment.video_id)
            .outerjoin(Embedding, (Embedding.segment_id == Segment.id) & (Embedding.encoder_id == (enc.id if enc else -1)))
            .where(Segment.id == int(segment_id))
        )
        with self.Session() as s:
            row = s.execute(q).first()
        if row is None:
            return None
        path, idx, start = row
        return path, int(idx[len(idx) // 2]) if idx else int(start)

    def segments_without_thumbnail(
        self, limit: int | None = None, narrower_than: int | None = None
    ) -> list[tuple[int, str, int, float]]:
        """(segment id, path, middle sampled frame, display aspect) of segments with no thumbnail,
        or (``narrower_than``) one narrower than that many pixels (or than the video, if smaller)."""
        enc = self.encoder()
        q = (
            select(Segment.id, Video.path, Embedding.frame_indices, Video.width, Video.height, Segment.start_frame)
            .join(Video, Video.id == Segment.video_id)
            .outerjoin(Embedding, (Embedding.segment_id == Segment.id) & (Embedding.encoder_id == (enc.id if enc else -1)))
            .outerjoin(Thumbnail, Thumbnail.segment_id == Segment.id)
            .where(
                Thumbnail.segment_id.is_(None)
                if narrower_than is None
                else (Thumbnail.segment_id.is_(None) | (Thumbnail.width < func.min(int(narrower_than), Video.width)))
            )
            .order_by(Segment.id)
        )
        if limit:
            q = q.limit(limit)
        with self.Session() as s:
            rows = s.execute(q).all()
        out = []
        for sid, path, idx, w, h, start in rows:
            frame = int(idx[len(idx) // 2]) if idx else int(start)
            out.append((int(sid), path, frame, (w / h) if h else 1.0))
        return out

    def video(self, video_id: int) -> dict | None:
        """One video's row and its segments (the server's video page)."""
        with self.Session() as s:
            v = s.get(Video, int(video_id))
            if v is None:
                return None
            segs = [
                {"segment_id": g.id, "index": g.idx, "start": g.start_s, "end": g.end_s}
                for g in s.scalars(select(Segment).where(Segment.video_id == v.id).order_by(Segment.idx))
            ]
            return {
                "id": v.id, "path": v.path, "duration": v.duration, "width": v.width, "height": v.height,
                "codec": v.codec, "size": v.size, "mtime_ns": v.mtime_ns, "segments": segs,
            }  # fmt: skip

    def segment_vector(self, segment_id: int) -> np.ndarray | None:
        """The stored vector of a segment under the store's encoder (more-like-this: no re-decode)."""
        enc = self.encoder()
        if enc is None:
            return None
        with self.Session() as s:
            blob = s.scalar(
                select(Embedding.vector).where(Embedding.segment_id == int(segment_id), Embedding.encoder_id == enc.id)
            )
        if blob is None:
            return None
        return unpack_vectors([blob], int(enc.spec["dim"]), unit=True)[0]

    def segment_at(self, path: str, seconds: float) -> int | None:
        """The segment of ``path`` that holds the moment ``seconds`` (``search --like FILE@T``)."""
        with self.Session() as s:
            found = s.execute(select(Video.id, Video.duration).where(Video.path == os.path.abspath(path))).first()
            if found is None:
                return None
            vid, duration = found
            rows = s.execute(
                select(Segment.id, Segment.start_s, Segment.end_s).where(Segment.video_id == vid).order_by(Segment.idx)
            ).all()
        end = max(float(duration), rows[-1][2] if rows else 0.0)
        if seconds > end:
            # Never a silent substitute: a moment past the end is a mistake the user should see.
            raise QueryError(f"{path} is {end:g} s long; {seconds:g} s is past its end")
        for sid, a, b in rows:
            if a <= seconds < b:
                return int(sid)
        return int(rows[-1][0]) if rows else None  # the very end belongs to the last segment

    def stored_plans(self) -> list[tuple[KnownVideo, str, tuple[tuple[int, int], ...]]]:
        """Every stored video with its path and its segments as ``(start_frame, end_frame)`` in
        order: what ``index --resegment`` compares a new plan with."""
        with self.Session() as s:
            frames: dict[int, list[tuple[int, int]]] = {}
            q = select(Segment.video_id, Segment.start_frame, Segment.end_frame).order_by(Segment.video_id, Segment.idx)
            for vid, a, b in s.execute(q):
                frames.setdefault(vid, []).append((int(a), int(b)))
            cols = (Video.id, Video.path, Video.size, Video.mtime_ns, Video.content_hash)
            return [
                (KnownVideo(vid, size, mtime, chash), path, tuple(frames.get(vid, ())))
                for vid, path, size, mtime, chash in s.execute(select(*cols).order_by(Video.id))
            ]

    def cuts(self, video_id: int) -> list[float] | None:
        """The cut times a video's segments were planned from; None when cut into fixed windows."""
        with self.Session() as s:
            value = s.scalar(select(Video.cuts).where(Video.id == int(video_id)))
        return None if value is None else [float(c) for c in value]

    def videos_by_hash(self, hashes: Iterable[str]) -> dict[str, list[tuple[int, str]]]:
        """(video id, path) of every stored video with each content hash, whatever its root."""
        out: dict[str, list[tuple[int, str]]] = {}
        with self.Session() as s:
            for chunk in _chunks(list(set(hashes)), 500):
                q = select(Video.id, Video.path, Video.content_hash).where(Video.content_hash.in_(chunk))
                for vid, path, h in s.execute(q):
                    out.setdefault(h, []).append((vid, path))
        return out

    def segment_rows(self, segment_ids: Sequence[int]) -> dict[int, SegmentRow]:
        out: dict[int, SegmentRow] = {}
        with self.Session() as s:
            for chunk in _chunks([int(i) for i in segment_ids], 900):
                q = (
                    select(
                        Segment.id, Segment.video_id, Video.path, Segment.idx, Segment.start_s, Segment.end_s, Video.duration,
                        Video.recorded_at,
                    )
                    .join(Video, Video.id == Segment.video_id)
                    .where(Segment.id.in_(chunk))
                )
                for row in s.execute(q):
                    out[row[0]] = SegmentRow(*row)
        return out

    def frame_indices(self, segment_ids: Sequence[int]) -> dict[int, list[int]]:
        """The frames each segment's vector was computed from (under the store's encoder)."""
        rec = self.encoder()
        out: dict[int, list[int]] = {}
        with self.Session() as s:
            for chunk in _chunks([int(i) for i in segment_ids], 900):
                q = select(Embedding.segment_id, Embedding.frame_indices).where(
                    Embedding.encoder_id == rec.id, Embedding.segment_id.in_(chunk)
                )
                out.update({sid: list(idx) for sid, idx in s.execute(q)})
        return out

    # -- filters (see vsearch/filters.py) ----------------------------------------------------
    @staticmethod
    def _filter_clauses(flt: SearchFilter) -> list:
        clauses = []
        if flt.under:
            spans = []
            for p in flt.under:
                lo, hi = _prefix_range(p)
                spans.append((Video.path == p) | ((Video.path >= lo) & (Video.path < hi)))
            clauses.append(or_(*spans))
        if flt.min_duration is not None:
            clauses.append(Video.duration >= flt.min_duration)
        if flt.max_duration is not None:
            clauses.append(Video.duration <= flt.max_duration)
        if flt.after is not None:
            clauses.append(Video.recorded_at >= flt.after)
        if flt.before is not None:
            clauses.append(Video.recorded_at < flt.before)
        return clauses

    def count_segments(self, flt: SearchFilter | None = None) -> int:
        """Segments in the store, or those whose video passes ``flt``."""
        q = select(func.count(Segment.id))
        if flt is not None and not flt.empty:
            q = q.join(Video, Video.id == Segment.video_id).where(*self._filter_clauses(flt))
        with self.Session() as s:
            return int(s.scalar(q) or 0)

    def filtered_segment_ids(self, flt: SearchFilter) -> np.ndarray:
        """Ids of the segments whose video passes ``flt`` (int64, ascending)."""
        q = select(Segment.id).join(Video, Video.id == Segment.video_id).where(*self._filter_clauses(flt)).order_by(Segment.id)
        with self.Session() as s:
            return np.fromiter((i for (i,) in s.execute(q)), dtype=np.int64)

    def count_videos_under(self, path: str) -> int:
        """Videos stored at ``path`` (a file) or under it (a folder)."""
        p = os.path.abspath(path)
        lo, hi = _prefix_range(p)
        with self.Session() as s:
            return int(s.scalar(select(func.count(Video.id)).where((Video.path == p) | ((Video.path >= lo) & (Video.path < hi)))) or 0)
