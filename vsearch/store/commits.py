"""Writing videos: whole videos (rows, segments, vectors, thumbnails) in one transaction that
bumps the generation, removals that leave tombstones, renames and touches. Mixed into ``Store``."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import numpy as np
from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from .base import StoreBase, storage_errors
from .rows import VECTOR_DTYPE, VideoWrite, storable_text, unpack_vectors
from .rows import chunks as _chunks
from .rows import prefix_range as _prefix_range
from .schema import Embedding, Failure, Segment, Thumbnail, Tombstone, Video, utcnow


def recording_time(v: VideoWrite) -> dict:
    """When the footage was recorded: the container's ``creation_time`` (POSIX seconds, from the
    probe) when it has one, else the file's mtime. Both are kept apart (``recorded_from``) so a
    user can tell a camera's clock from a copy's date."""
    created = v.info.get("creation_time")
    if isinstance(created, (int, float)) and created > 0:
        return {"recorded_at": float(created), "recorded_from": "container"}
    return {"recorded_at": v.mtime_ns / 1e9, "recorded_from": "mtime"}


class Commits(StoreBase):
    @storage_errors
    def commit(self, encoder_id: int, videos: Sequence[VideoWrite] = (), remove_video_ids: Iterable[int] = ()) -> int:
        """Write whole videos and remove others in one transaction; returns the new generation.

        A video whose path is already stored replaces the old row (its old vectors are
        tombstoned). The loaded FAISS index, if any, is brought to the new generation.
        """
        remove_ids = set(int(i) for i in remove_video_ids)
        added_ids: list[int] = []
        added_vecs: list[np.ndarray] = []
        with self.Session.begin() as s:
            gen = self._bump_generation(s)
            paths = [v.path for v in videos]
            for chunk in _chunks(paths, 500):
                remove_ids.update(s.scalars(select(Video.id).where(Video.path.in_(chunk))))
            removed_pairs = self._delete_videos(s, remove_ids, gen)
            if videos:
                added_ids, added_vecs = self._insert_videos(s, encoder_id, gen, videos)
                for chunk in _chunks(paths, 500):
                    s.execute(delete(Failure).where(Failure.path.in_(chunk)))
        removed = np.array([seg for enc, seg in removed_pairs if enc == encoder_id], dtype=np.int64)
        added = np.array(added_ids, dtype=np.int64)
        vecs = np.stack(added_vecs) if added_vecs else None
        self._apply_to_index(encoder_id, gen, added, vecs, removed)
        return gen

    @staticmethod
    def _insert_videos(s: Session, encoder_id: int, gen: int, videos: Sequence[VideoWrite]) -> tuple[list[int], list[np.ndarray]]:
        """Videos, segments, embeddings and thumbnails as a few multi-row INSERTs (Core, not ORM
        objects: the ORM's per-object flush held the single writer to ~8,000 segments/s). Ids
        come back in parameter order (RETURNING), so each segment meets its vector."""
        con = s.connection()  # Core on the session's transaction: no ORM bulk bookkeeping either
        videos_t, segments_t = Video.__table__, Segment.__table__
        now = utcnow()
        video_rows = [
            {
                "path": v.path,
                "size": v.size,
                "mtime_ns": v.mtime_ns,
                "content_hash": v.content_hash,
                "duration": float(v.info["duration"]),
                "fps": float(v.info["fps"]),
                "num_frames": int(v.info["num_frames"]),
                "width": int(v.info["width"]),
                "height": int(v.info["height"]),
                "codec": v.info.get("codec"),
                "decoder": v.info.get("backend"),
                "sampling": v.info.get("sampling", "exact"),
                "cuts": v.info.get("cuts"),
                "indexed_at": now,
                "warnings": storable_text(v.warnings) if v.warnings else None,
                **recording_time(v),
            }
            for v in videos
        ]
        video_ids = list(con.scalars(insert(videos_t).returning(videos_t.c.id, sort_by_parameter_order=True), video_rows))
        seg_rows = [
            {
                "video_id": vid,
                "idx": g.idx,
                "start_s": g.start_s,
                "end_s": g.end_s,
                "start_frame": g.start_frame,
                "end_frame": g.end_frame,
            }
            for vid, v in zip(video_ids, videos)
            for g in v.segments
        ]
        if not seg_rows:
            return [], []
        seg_ids = list(con.scalars(insert(segments_t).returning(segments_t.c.id, sort_by_parameter_order=True), seg_rows))
        writes = [g for v in videos for g in v.segments]
        vectors = [np.asarray(g.vector, VECTOR_DTYPE) for g in writes]
        con.execute(
            insert(Embedding.__table__),
            [
                {
                    "segment_id": sid,
                    "encoder_id": encoder_id,
                    "gen": gen,
                    "frame_indices": [int(i) for i in g.frame_indices],
                    "vector": vec.tobytes(),
                }
                for sid, g, vec in zip(seg_ids, writes, vectors)
            ],
        )
        thumbs = [
            {"segment_id": sid, "jpeg": g.thumbnail[0], "width": g.thumbnail[1], "height": g.thumbnail[2]}
            for sid, g in zip(seg_ids, writes)
            if g.thumbnail is not None
        ]
        if thumbs:
            con.execute(insert(Thumbnail.__table__), thumbs)
        return seg_ids, [v.astype(np.float32) for v in vectors]

    def _delete_videos(self, s: Session, video_ids: set[int], gen: int) -> list[tuple[int, int]]:
        if not video_ids:
            return []
        ids = sorted(video_ids)
        pairs: list[tuple[int, int]] = []
        for chunk in _chunks(ids, 500):
            pairs += [
                (int(e), int(g))
                for e, g in s.execute(
                    select(Embedding.encoder_id, Embedding.segment_id).join(Segment).where(Segment.video_id.in_(chunk))
                )
            ]
        if pairs:
            s.execute(insert(Tombstone), [{"encoder_id": e, "segment_id": g, "gen": gen} for e, g in pairs])
        for chunk in _chunks(ids, 500):
            s.execute(delete(Video).where(Video.id.in_(chunk)))
        return pairs

    @storage_errors
    def remove_paths(self, paths: Iterable[str]) -> list[str]:
        """Delete these videos (exact paths, or everything under a folder); returns what was removed."""
        targets: dict[int, str] = {}
        with self.Session() as s:
            for p in paths:
                p = os.path.abspath(p)
                for vid, vpath in s.execute(select(Video.id, Video.path).where(Video.path == p)):
                    targets[vid] = vpath
                lo, hi = _prefix_range(p)
                for vid, vpath in s.execute(select(Video.id, Video.path).where(Video.path >= lo, Video.path < hi)):
                    targets[vid] = vpath
        if targets:
            enc = self.encoder()
            self.commit(enc.id if enc else -1, (), targets.keys())
        return sorted(targets.values())

    def move_video(self, video_id: int, new_path: str, size: int, mtime_ns: int) -> None:
        """A renamed file keeps its segments and vectors; only the path changes."""
        with self.Session.begin() as s:
            s.execute(update(Video).where(Video.id == video_id).values(path=new_path, size=size, mtime_ns=mtime_ns))
            s.execute(delete(Failure).where(Failure.path == new_path))

    def set_cuts(self, cuts_by_video: dict[int, list[float] | None]) -> None:
        """Record re-planned videos' cut times whose segments stayed the same (``index --resegment``:
        nothing to re-embed, but the store now knows where their shots are)."""
        if not cuts_by_video:
            return
        with self.Session.begin() as s:
            for vid, cuts in cuts_by_video.items():
                s.execute(update(Video).where(Video.id == int(vid)).values(cuts=cuts))

    def touch_video(self, video_id: int, mtime_ns: int) -> None:
        with self.Session.begin() as s:
            s.execute(update(Video).where(Video.id == video_id).values(mtime_ns=mtime_ns))

    def iter_embeddings(self, encoder_id: int, batch: int = 20000):
        """(segment ids, float32 vectors) in batches, for exports and rebuilds."""
        dim = None
        with self.Session() as s:
            q = (
                select(Embedding.segment_id, Embedding.vector)
                .where(Embedding.encoder_id == encoder_id)
                .order_by(Embedding.segment_id)
            )
            ids, blobs = [], []
            for sid, blob in s.execute(q).yield_per(batch):
                dim = dim or len(blob) // np.dtype(VECTOR_DTYPE).itemsize
                ids.append(sid)
                blobs.append(blob)
                if len(ids) >= batch:
                    yield np.array(ids, np.int64), unpack_vectors(blobs, dim)
                    ids, blobs = [], []
            if ids:
                yield np.array(ids, np.int64), unpack_vectors(blobs, dim)

