"""A store: one folder with a SQLite database (the truth) and FAISS index files (a cache).

Consistency rule: every change to vectors happens in one SQLite transaction that also bumps
the store's **generation**; new embedding rows carry that generation and removed vectors leave
a tombstone with it. A FAISS file records the generation it reflects in its name. Opening the
index loads the newest usable file and replays what happened since (adds, then tombstones);
a missing, damaged or too-old file is rebuilt from the database. So a crash at any moment
loses at most uncommitted work, and FAISS can never disagree with SQLite for long enough to be
observed.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import Integer, Text, delete, func, insert, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from ..config import DEFAULT_MIN_TAIL_SECONDS, DEFAULT_SEGMENT_SECONDS, default_store_dir
from ..errors import EmptyStore, EncoderMismatch, StoreError, StoreNotFound
from ..video.discover import display_path as printable
from . import db as dbmod
from .catalog import Catalog
from .health import CheckReport, Health
from .lock import WriteLock
from .rows import DB_NAME, VECTOR_DTYPE, KnownVideo, SegmentRow, pack_vector, unpack_vectors
from .rows import chunks as _chunks
from .rows import prefix_range as _prefix_range
from .schema import Embedding, Encoder, Failure, Meta, Run, Segment, Thumbnail, Tombstone, VectorIndexConfig, Video, utcnow
from .vectors import IndexPlan, VectorIndex, choose_index, index_file_name, list_index_files, recall_meter, tune_nprobe

__all__ = ["CheckReport", "EncoderRecord", "KnownVideo", "SegmentRow", "SegmentWrite", "Store", "VideoWrite",
           "VECTOR_DTYPE", "pack_vector", "unpack_vectors"]  # fmt: skip

INDEX_DIR = "index"
LOCK_NAME = "write.lock"


@dataclass(frozen=True)
class EncoderRecord:
    id: int
    name: str
    source: str | None
    fingerprint: str
    spec: dict


@dataclass
class SegmentWrite:
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
    path: str
    size: int
    mtime_ns: int
    content_hash: str
    info: dict  # duration, fps, num_frames, width, height, codec, backend
    segments: list[SegmentWrite]
    warnings: str | None = None


def _storage_errors(fn):
    """Turn a full disk or a read-only medium into a ``StoreError`` that says so.

    Whatever was being written is rolled back (SQLite) or never renamed into place (FAISS
    files), so the store opens as it was before the failed write.
    """
    import errno
    import functools

    @functools.wraps(fn)
    def wrapper(self, *args, **kwargs):
        try:
            return fn(self, *args, **kwargs)
        except (OperationalError, OSError, RuntimeError) as exc:
            text = str(getattr(exc, "orig", exc)).lower()
            code = getattr(exc, "errno", None)
            if "disk is full" in text or "no space left" in text or code == errno.ENOSPC:
                raise StoreError(
                    f"the disk holding the store at {self.root} is full. Nothing already committed was lost; "
                    "free some space and run the command again (finished files are skipped)."
                ) from None
            if "readonly" in text or "read-only" in text or code in (errno.EROFS, errno.EACCES):
                raise StoreError(
                    f"the store at {self.root} cannot be written (read-only or no permission): {text[:120]}"
                ) from None
            raise

    return wrapper


class Store(Catalog, Health):
    """Open with ``Store.open(path)``; close with ``close()`` or a ``with`` block."""

    def __init__(self, root: Path, engine, readonly: bool = False):
        self.root = root
        self.readonly = readonly
        self.engine = engine
        self.Session = dbmod.sessions(engine)
        self.index_dir = root / INDEX_DIR
        self._index: VectorIndex | None = None
        self._index_gen = -1
        self._index_encoder: int | None = None
        self._index_lock = threading.RLock()
        self._lock: _ReentrantLock | None = None

    # -- opening -----------------------------------------------------------------------------
    @classmethod
    def open(cls, root: str | os.PathLike[str] | None = None, *, create: bool = True) -> Store:
        """Open (and with ``create``, initialise) the store at ``root`` or the default location.

        Pending Alembic migrations are applied here, so code always sees the current schema. A
        store on read-only media opens read-only: search works, writing says why it cannot.
        """
        path = Path(root).expanduser() if root is not None else default_store_dir()
        db_path = path / DB_NAME
        if not db_path.exists():
            if not create:
                raise StoreNotFound(f"no vsearch store at {path} (index something first, or pass --store)")
            try:
                (path / INDEX_DIR).mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create a store at {path}: {exc.strerror or exc}") from None
            if not os.access(path, os.W_OK):
                raise StoreError(f"cannot create a store at {path}: the folder is not writable")
        readonly = not os.access(path, os.W_OK) or (db_path.exists() and not os.access(db_path, os.W_OK))
        engine = dbmod.make_engine(db_path, readonly=readonly)
        try:
            if readonly:
                if dbmod.current_revision(engine) != dbmod.SCHEMA_HEAD:
                    raise StoreError(
                        f"the store at {path} is read-only and needs a schema upgrade; open it once where it is writable"
                    )
            else:
                dbmod.upgrade(engine)
            store = cls(path.resolve(), engine, readonly=readonly)
            if not readonly:
                store._init_meta()
        except OperationalError as exc:
            engine.dispose()
            import shutil

            if shutil.disk_usage(path).free < (256 << 10):
                raise StoreError(
                    f"cannot open the store at {path}: its disk is full (free some space; nothing was lost)"
                ) from None
            raise StoreError(f"cannot open the store database {db_path}: {exc.orig}") from None
        except StoreError:
            engine.dispose()
            raise
        return store

    def _init_meta(self) -> None:
        with self.Session() as s:
            if s.get(Meta, "generation") is not None:
                return
        # A new store: write the defaults under the write lock, unless another process just did.
        with self.engine.connect().execution_options(immediate=True) as conn, conn.begin():
            if conn.execute(select(Meta.value).where(Meta.key == "generation")).scalar() is None:
                conn.execute(
                    insert(Meta),
                    [
                        {"key": "generation", "value": "0"},
                        {"key": "segment_seconds", "value": repr(DEFAULT_SEGMENT_SECONDS)},
                        {"key": "min_tail_seconds", "value": repr(DEFAULT_MIN_TAIL_SECONDS)},
                    ],
                )

    def close(self) -> None:
        with self._index_lock:
            self._index = None
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def lock(self, purpose: str, wait: bool = False) -> _ReentrantLock:
        """The store's write lock. Re-entrant per ``Store`` object: a caller may take it early
        (the CLI does, before loading a model) and the library call inside takes it again."""
        if self.readonly:
            raise StoreError(
                f"the store at {self.root} is read-only (read-only folder or medium): it can be searched, not changed"
            )
        if self._lock is not None:
            self._lock.depth += 1
            return self._lock
        lock = _ReentrantLock(self, WriteLock(self.root / LOCK_NAME, purpose))
        lock.inner.acquire(wait=wait)
        self._lock = lock
        return lock

    # -- meta --------------------------------------------------------------------------------
    @staticmethod
    def _meta(s: Session, key: str, default: str | None = None) -> str | None:
        row = s.get(Meta, key)
        return row.value if row is not None else default

    @staticmethod
    def _set_meta(s: Session, key: str, value: str) -> None:
        s.merge(Meta(key=key, value=value))

    def get_setting(self, key: str, default: str | None = None) -> str | None:
        with self.Session() as s:
            return self._meta(s, key, default)

    def generation(self) -> int:
        with self.Session() as s:
            return int(self._meta(s, "generation", "0"))

    def segmenting(self) -> tuple[float, float]:
        """(segment length, minimum tail) in seconds, fixed when the store is created."""
        with self.Session() as s:
            return float(self._meta(s, "segment_seconds")), float(self._meta(s, "min_tail_seconds"))

    def set_segmenting(self, segment_seconds: float, min_tail_seconds: float | None = None) -> None:
        """Change segmenting; only allowed while the store holds no videos (it would mix two kinds)."""
        current = self.segmenting()
        wanted = (segment_seconds, current[1] if min_tail_seconds is None else min_tail_seconds)
        if wanted == current:
            return
        if self.count_videos():
            raise StoreError(
                f"this store cuts videos into {current[0]:g} s segments; it already holds videos, so "
                f"{wanted[0]:g} s would mix two segmentings. Use a new store (--store) for a different length."
            )
        with self.Session.begin() as s:
            self._set_meta(s, "segment_seconds", repr(float(wanted[0])))
            self._set_meta(s, "min_tail_seconds", repr(float(wanted[1])))

    # -- encoder -----------------------------------------------------------------------------
    def encoder(self) -> EncoderRecord | None:
        with self.Session() as s:
            eid = self._meta(s, "encoder_id")
            if eid is None:
                return None
            return _record(s.get(Encoder, int(eid)))

    @_storage_errors
    def bind_encoder(self, encoder) -> EncoderRecord:
        """Make ``encoder`` the store's encoder if it has none; refuse a different one."""
        current = self.encoder()
        if current is not None:
            self.check_encoder(encoder, current)
            return current
        with self.Session.begin() as s:
            row = self._encoder_row(s, encoder)
            self._set_meta(s, "encoder_id", str(row.id))
            return _record(row)

    @staticmethod
    def _encoder_row(s: Session, encoder) -> Encoder:
        """The row of ``encoder`` (by fingerprint), created when the store has not seen it."""
        row = s.scalars(select(Encoder).where(Encoder.fingerprint == encoder.fingerprint)).first()
        if row is None:
            row = Encoder(name=encoder.name, source=encoder.source, fingerprint=encoder.fingerprint, spec=encoder.spec.as_dict())
            s.add(row)
            s.flush()
        return row

    def check_encoder(self, encoder, record: EncoderRecord | None = None) -> None:
        record = record or self.encoder()
        if record is None or record.fingerprint == encoder.fingerprint:
            return
        raise EncoderMismatch(
            f"this store was built with {record.name} (fingerprint {record.fingerprint[:12]}), "
            f"not {encoder.name} (fingerprint {encoder.fingerprint[:12]}). Vectors of different models "
            "cannot be compared. Search with the store's own model (leave out --model), re-embed the "
            "store with the new one (`vsearch reembed --model ...`), or use another store (--store)."
        )

    # -- re-embedding ------------------------------------------------------------------------
    def stage_encoder(self, encoder) -> EncoderRecord:
        """Register ``encoder`` as the re-embedding target (searches keep using the current one)."""
        with self.Session.begin() as s:
            row = self._encoder_row(s, encoder)
            self._set_meta(s, "reembed_target", str(row.id))
            return _record(row)

    def unstage_encoder(self) -> None:
        """Forget an unfinished re-embedding: its vectors and the target marker."""
        staged = self.staged_encoder()
        if staged is None:
            return
        with self.Session.begin() as s:
            self._bump_generation(s)
            s.execute(delete(Embedding).where(Embedding.encoder_id == staged.id))
            s.execute(delete(Tombstone).where(Tombstone.encoder_id == staged.id))
            s.execute(delete(Meta).where(Meta.key == "reembed_target"))

    def staged_encoder(self) -> EncoderRecord | None:
        with self.Session() as s:
            eid = self._meta(s, "reembed_target")
            row = s.get(Encoder, int(eid)) if eid else None
            return None if row is None else _record(row)

    def videos_missing_vectors(
        self, encoder_id: int
    ) -> list[tuple[int, str, int, int, list[tuple[int, int, int, float, float]]]]:
        """Videos with at least one segment lacking a vector from ``encoder_id``, with all their
        segments: (video id, path, size, mtime_ns, [(segment id, start_frame, end_frame, start_s, end_s)])."""
        have = select(Embedding.segment_id).where(Embedding.encoder_id == encoder_id)
        with self.Session() as s:
            todo = set(s.scalars(select(Segment.video_id).where(Segment.id.not_in(have))).all())
            out = []
            for chunk in _chunks(sorted(todo), 500):
                videos = {v.id: v for v in s.scalars(select(Video).where(Video.id.in_(chunk)))}
                segs: dict[int, list] = {}
                q = select(Segment).where(Segment.video_id.in_(chunk)).order_by(Segment.video_id, Segment.idx)
                for seg in s.scalars(q):
                    segs.setdefault(seg.video_id, []).append((seg.id, seg.start_frame, seg.end_frame, seg.start_s, seg.end_s))
                out += [(vid, videos[vid].path, videos[vid].size, videos[vid].mtime_ns, segs.get(vid, [])) for vid in chunk]
            return out

    @_storage_errors
    def add_embeddings(self, encoder_id: int, rows: Sequence[tuple[int, list[int], np.ndarray]]) -> int:
        """Store vectors of existing segments for a (staged) encoder, in one transaction."""
        if not rows:
            return self.generation()
        with self.Session.begin() as s:
            gen = self._bump_generation(s)
            s.execute(delete(Embedding).where(Embedding.encoder_id == encoder_id, Embedding.segment_id.in_([r[0] for r in rows])))
            s.execute(
                insert(Embedding),
                [
                    {
                        "segment_id": sid,
                        "encoder_id": encoder_id,
                        "gen": gen,
                        "frame_indices": [int(i) for i in idx],
                        "vector": pack_vector(v),
                    }
                    for sid, idx, v in rows
                ],
            )
        return gen

    @_storage_errors
    def swap_encoder(self, target_id: int) -> list[str]:
        """Make the staged encoder the store's encoder, atomically; returns videos dropped.

        Its FAISS file is written first (readers ignore it until the switch). Then one
        transaction: videos still lacking a vector from the new encoder (changed, vanished or
        undecodable files) are removed, so the next ``index`` run re-adds them; the old
        encoder's vectors and tombstones go; the store's encoder becomes the new one.
        """
        with self.Session.begin() as s:
            old_id = int(self._meta(s, "encoder_id"))
            gen = int(self._meta(s, "generation"))
            dim = int(s.get(Encoder, target_id).spec["dim"])
        index = VectorIndex(dim)
        with self.Session() as s, s.begin():
            self._add_from_db(s, index, target_id, -1, gen)
        self.index_dir.mkdir(parents=True, exist_ok=True)
        index.write(self.index_dir / index_file_name(target_id, gen))
        have = select(Embedding.segment_id).where(Embedding.encoder_id == target_id)
        with self.Session.begin() as s:
            new_gen = self._bump_generation(s)
            lacking = set(s.scalars(select(Segment.video_id).where(Segment.id.not_in(have))).all())
            dropped = [p for (p,) in s.execute(select(Video.path).where(Video.id.in_(lacking)))] if lacking else []
            self._delete_videos(s, lacking, new_gen)
            s.execute(delete(Embedding).where(Embedding.encoder_id == old_id))
            s.execute(delete(Tombstone).where(Tombstone.encoder_id == old_id))
            s.execute(delete(Meta).where(Meta.key.in_(["reembed_target", f"pruned_through.e{old_id}"])))
            self._set_meta(s, f"pruned_through.e{target_id}", str(gen))
            self._set_meta(s, "encoder_id", str(target_id))
        with self._index_lock:
            self._index = None
        for _g, path in list_index_files(self.index_dir, old_id):
            path.unlink(missing_ok=True)
        return sorted(dropped)

    # -- writes ------------------------------------------------------------------------------
    def _bump_generation(self, s: Session) -> int:
        # First statement of every write transaction: it takes SQLite's write lock at once, so two
        # writers queue on the busy timeout instead of deadlocking on a read-to-write upgrade.
        s.execute(update(Meta).where(Meta.key == "generation").values(value=func.cast(func.cast(Meta.value, Integer) + 1, Text)))
        return int(self._meta(s, "generation"))

    @_storage_errors
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
                "indexed_at": now,
                "warnings": printable(v.warnings) if v.warnings else None,
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

    @_storage_errors
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

    @_storage_errors
    def record_failure(self, path: str, reason: str, size: int | None, mtime_ns: int | None, run_id: int | None) -> None:
        with self.Session.begin() as s:
            s.execute(delete(Failure).where(Failure.path == path))
            # Decoder messages can quote a non-UTF-8 file name; SQLite text must be valid UTF-8.
            s.add(Failure(path=path, reason=printable(reason)[:2000], size=size, mtime_ns=mtime_ns, run_id=run_id))

    def clear_failures(self, paths: Iterable[str]) -> None:
        with self.Session.begin() as s:
            for chunk in _chunks(list(paths), 500):
                s.execute(delete(Failure).where(Failure.path.in_(chunk)))

    def prune_failures(self, roots: Sequence[str], existing: set[str]) -> None:
        """Forget recorded failures of files under ``roots`` that are no longer there."""
        with self.Session.begin() as s:
            for root in roots:
                lo, hi = _prefix_range(root)
                rows = s.execute(
                    select(Failure.id, Failure.path).where((Failure.path == root) | ((Failure.path >= lo) & (Failure.path < hi)))
                )
                gone = [fid for fid, path in rows if path not in existing]
                for chunk in _chunks(gone, 500):
                    s.execute(delete(Failure).where(Failure.id.in_(chunk)))

    def failures(self) -> list[dict]:
        with self.Session() as s:
            rows = s.scalars(select(Failure).order_by(Failure.path)).all()
            return [{"path": r.path, "reason": r.reason, "failed_at": r.failed_at.isoformat(), "run_id": r.run_id} for r in rows]

    # -- runs --------------------------------------------------------------------------------
    @_storage_errors
    def start_run(self, kind: str, roots: Sequence[str] | None = None, encoder_id: int | None = None) -> int:
        with self.Session.begin() as s:
            # We hold the write lock, so any run still marked running died without saying so.
            s.execute(update(Run).where(Run.status == "running").values(status="crashed"))
            run = Run(kind=kind, status="running", roots=list(roots or []), encoder_id=encoder_id, pid=os.getpid())
            s.add(run)
            s.flush()
            return run.id

    @_storage_errors
    def finish_run(self, run_id: int, status: str, counts: dict, timings: dict | None = None) -> None:
        with self.Session.begin() as s:
            s.execute(
                update(Run)
                .where(Run.id == run_id)
                .values(status=status, finished_at=utcnow(), counts=counts, timings=timings or {})
            )

    # -- reads -------------------------------------------------------------------------------
    def move_video(self, video_id: int, new_path: str, size: int, mtime_ns: int) -> None:
        """A renamed file keeps its segments and vectors; only the path changes."""
        with self.Session.begin() as s:
            s.execute(update(Video).where(Video.id == video_id).values(path=new_path, size=size, mtime_ns=mtime_ns))
            s.execute(delete(Failure).where(Failure.path == new_path))

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

    # -- the FAISS index ---------------------------------------------------------------------
    def vector_index(self, fingerprint: str | None = None) -> VectorIndex:
        """The index for the store's encoder, at the newest committed generation.

        With ``fingerprint`` (the encoder the caller's query vectors came from), the store's
        encoder is checked inside the same snapshot that loads the index, so a re-embedding that
        swaps encoders concurrently can never pair old query vectors with the new index.
        """
        for _attempt in range(5):
            rec = self.encoder()
            if rec is None:
                raise EmptyStore(f"the store at {self.root} is empty: index some videos first (`vsearch index DIR`)")
            if fingerprint is not None and rec.fingerprint != fingerprint:
                raise EncoderMismatch(
                    f"the store's encoder changed to {rec.name} (fingerprint {rec.fingerprint[:12]}); reload it to search"
                )
            with self._index_lock:
                if self._index is None or self._index_encoder != rec.id:
                    ok = self._load_index(rec)
                else:
                    ok = self._catch_up(rec)
                if ok:
                    return self._index
        raise StoreError("the store's encoder kept changing while loading the index; try again")

    def _load_index(self, rec: EncoderRecord) -> bool:
        """Load the newest usable file and replay; False if the store's encoder is no longer ``rec``."""
        dim = int(rec.spec["dim"])
        for _attempt in range(3):
            with self.Session() as s, s.begin():
                if self._meta(s, "encoder_id") != str(rec.id):
                    return False
                gen = int(self._meta(s, "generation"))
                pruned = int(self._meta(s, f"pruned_through.e{rec.id}", "0"))
                files = list_index_files(self.index_dir, rec.id)
                if files and files[0][0] > gen:
                    continue  # a writer saved right after our snapshot began: take a new snapshot
                index, base = None, gen
                for fgen, path in files:
                    if fgen < pruned:
                        break  # tombstones before `pruned` are gone: cannot catch up from here
                    try:
                        index, base = VectorIndex.read(path, dim), fgen
                        break
                    except (RuntimeError, StoreError, OSError):
                        continue  # damaged or vanished: try an older one, else rebuild
                if index is None:
                    index = self._fresh_index(s, rec, gen)
                else:
                    self._replay(s, index, rec.id, base, gen)
            self._index, self._index_gen, self._index_encoder = index, gen, rec.id
            return True
        raise StoreError("the index kept changing while loading; try again")

    def _catch_up(self, rec: EncoderRecord) -> bool:
        with self.Session() as s, s.begin():
            if self._meta(s, "encoder_id") != str(rec.id):
                return False
            gen = int(self._meta(s, "generation"))
            if gen == self._index_gen:
                return True
            pruned = int(self._meta(s, f"pruned_through.e{rec.id}", "0"))
            if self._index_gen >= pruned:
                self._replay(s, self._index, rec.id, self._index_gen, gen)
                self._index_gen = gen
                return True
        return self._load_index(rec)

    def _fresh_index(self, s: Session, rec: EncoderRecord, gen: int) -> VectorIndex:
        """Build this encoder's index from the database as configured (flat, or a trained IVF)."""
        dim = int(rec.spec["dim"])
        cfg = s.get(VectorIndexConfig, rec.id)
        if cfg is None or cfg.kind == "flat":
            index = VectorIndex(dim)
            self._add_from_db(s, index, rec.id, -1, gen)
            return index
        ids, vecs = self._all_vectors(s, rec.id, gen)
        p = cfg.params
        plan = IndexPlan(cfg.kind, int(p["nlist"]), int(p.get("pq_m", 0)), int(p.get("pq_bits", 8)))
        index = VectorIndex.build(plan, dim, _training_sample(vecs, plan.nlist))
        index.add(ids, vecs)
        index.nprobe = int(p.get("nprobe", 1))
        return index

    def _all_vectors(self, s: Session, encoder_id: int, until: int) -> tuple[np.ndarray, np.ndarray]:
        q = select(Embedding.segment_id, Embedding.vector).where(Embedding.encoder_id == encoder_id, Embedding.gen <= until)
        ids, blobs = [], []
        for sid, blob in s.execute(q).yield_per(20000):
            ids.append(sid)
            blobs.append(blob)
        dim = len(blobs[0]) // np.dtype(VECTOR_DTYPE).itemsize if blobs else 0
        return np.array(ids, np.int64), unpack_vectors(blobs, dim)

    def _replay(self, s: Session, index: VectorIndex, encoder_id: int, since: int, until: int) -> None:
        gone = s.scalars(
            select(Tombstone.segment_id).where(Tombstone.encoder_id == encoder_id, Tombstone.gen > since, Tombstone.gen <= until)
        ).all()
        index.remove(np.array(gone, np.int64))
        self._add_from_db(s, index, encoder_id, since, until)

    @staticmethod
    def _add_from_db(s: Session, index: VectorIndex, encoder_id: int, since: int, until: int, batch: int = 20000) -> None:
        q = select(Embedding.segment_id, Embedding.vector).where(
            Embedding.encoder_id == encoder_id, Embedding.gen > since, Embedding.gen <= until
        )
        ids, blobs = [], []
        for sid, blob in s.execute(q).yield_per(batch):
            ids.append(sid)
            blobs.append(blob)
            if len(ids) >= batch:
                index.add(np.array(ids, np.int64), unpack_vectors(blobs, index.dim))
                ids, blobs = [], []
        index.add(np.array(ids, np.int64), unpack_vectors(blobs, index.dim))

    def _apply_to_index(self, encoder_id: int, gen: int, added: np.ndarray, vectors, removed: np.ndarray) -> None:
        with self._index_lock:
            if self._index is None or self._index_encoder != encoder_id:
                return
            if self._index_gen != gen - 1:
                self._index = None  # someone else wrote in between: reload on next use
                return
            self._index.remove(removed)
            if vectors is not None:
                self._index.add(added, vectors)
            self._index_gen = gen

    @_storage_errors
    def save_index(self) -> int | None:
        """Persist the loaded index as of its generation; drop older files and spent tombstones.

        Call while holding the write lock. Returns the generation written, or None when there
        was nothing to write.
        """
        rec = self.encoder()
        if rec is None:
            return None
        index = self.vector_index()
        with self._index_lock:
            gen = self._index_gen
            target = self.index_dir / index_file_name(rec.id, gen)
            self.index_dir.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                index.write(target)
        with self.Session.begin() as s:
            self._set_meta(s, f"pruned_through.e{rec.id}", str(gen))
            s.execute(delete(Tombstone).where(Tombstone.encoder_id == rec.id, Tombstone.gen <= gen))
        for fgen, path in list_index_files(self.index_dir, rec.id):
            if fgen < gen:
                path.unlink(missing_ok=True)
        return gen

    @_storage_errors
    def rebuild_index(self, kind: str | None = None, nlist: int | None = None, nprobe: int | None = None) -> dict:
        """Rebuild FAISS from the database (``vsearch reindex``), optionally as another kind.

        ``kind``: None keeps the configured kind; "auto" applies the size policy; "flat", "ivf",
        "ivf-pq" force one. IVF kinds are trained on (a sample of) the stored vectors and their
        nprobe tuned for recall@10 >= 0.95 against exact search (or pinned with ``nprobe``).
        The choice is recorded (``vector_indexes``) and shown by ``status``.
        """
        rec = self.encoder()
        if rec is None:
            raise EmptyStore(f"the store at {self.root} is empty")
        dim = int(rec.spec["dim"])
        with self._index_lock:
            with self.Session() as s, s.begin():
                gen = int(self._meta(s, "generation"))
                cfg = s.get(VectorIndexConfig, rec.id)
                current = cfg.kind if cfg else "flat"
                policy = (cfg.params.get("policy") if cfg else None) or "auto"
                want = kind or (policy if policy == "auto" else current)
                ids, vecs = self._all_vectors(s, rec.id, gen)
            plan = choose_index(len(ids), dim, want, nlist)
            params = {"policy": "auto" if want == "auto" else "pinned", **plan.as_params()}
            if plan.kind == "flat":
                index = VectorIndex(dim)
                index.add(ids, vecs)
            else:
                index = VectorIndex.build(plan, dim, _training_sample(vecs, plan.nlist))
                index.add(ids, vecs)
                if nprobe:
                    index.nprobe = nprobe
                    params["nprobe"], params["recall_at_10"] = nprobe, round(recall_meter(index, ids, vecs)(nprobe), 4)
                else:
                    probe, recall = tune_nprobe(index, ids, vecs)
                    params["nprobe"], params["recall_at_10"] = probe, round(recall, 4)
                params["trained_on"] = len(ids)
            with self.Session.begin() as s:
                s.merge(VectorIndexConfig(encoder_id=rec.id, kind=plan.kind, params=params, updated_at=utcnow()))
            self._index, self._index_gen, self._index_encoder = index, gen, rec.id
            for _fgen, path in list_index_files(self.index_dir, rec.id):
                path.unlink(missing_ok=True)
        self.save_index()
        return {"kind": plan.kind, "vectors": index.ntotal, **params}

    def apply_index_policy(self) -> dict | None:
        """After indexing: switch flat→IVF past the size threshold, retrain an IVF that outgrew
        its training 4x. Only for the automatic policy; a pinned kind is left alone."""
        rec = self.encoder()
        if rec is None:
            return None
        with self.Session() as s:
            cfg = s.get(VectorIndexConfig, rec.id)
        if cfg is not None and cfg.params.get("policy") == "pinned":
            return None
        n = self.vector_index().ntotal
        kind = cfg.kind if cfg else "flat"
        wanted = choose_index(n, int(rec.spec["dim"]), "auto").kind
        if wanted != kind or (kind != "flat" and n > 4 * int(cfg.params.get("trained_on", n))):
            return self.rebuild_index("auto")
        return None


class _ReentrantLock:
    """What ``Store.lock`` returns: release() undoes one lock() call."""

    def __init__(self, store: Store, inner: WriteLock):
        self.store, self.inner, self.depth = store, inner, 1

    def release(self) -> None:
        self.depth -= 1
        if self.depth == 0:
            self.inner.release()
            self.store._lock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _record(row: Encoder) -> EncoderRecord:
    return EncoderRecord(row.id, row.name, row.source, row.fingerprint, dict(row.spec))


def _training_sample(vectors: np.ndarray, nlist: int, per_list: int = 256, seed: int = 0) -> np.ndarray:
    """At most ``per_list`` points per centroid for k-means (FAISS's own default cap)."""
    cap = per_list * nlist
    if len(vectors) <= cap:
        return vectors
    return vectors[np.random.default_rng(seed).choice(len(vectors), size=cap, replace=False)]
