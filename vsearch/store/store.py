"""A store: one folder with a SQLite database (the truth) and FAISS index files (a cache).

Consistency rule: every change to vectors happens in one SQLite transaction that also bumps
the store's **generation**; new embedding rows carry that generation and removed vectors leave
a tombstone with it. A FAISS file records the generation it reflects in its name. Opening the
index loads the newest usable file and replays what happened since (adds, then tombstones);
a missing, damaged or too-old file is rebuilt from the database. So a crash at any moment
loses at most uncommitted work, and FAISS can never disagree with SQLite for long enough to be
observed.

``Store`` is the one face; its body lives in one mixin per responsibility:

=================  ===================================================
``catalog.py``     reads: videos, segments, thumbnails
``commits.py``     writes: whole videos in one transaction, removals
``encoders.py``    the encoder lifecycle: bind, check, stage, swap
``runlog.py``      ingest runs and recorded failures
``index_sync.py``  FAISS catch-up, rebuild and the index policy
``health.py``      ``check``, ``repair`` and ``status``
=================  ===================================================

This module holds what is left: opening (and creating) a store, the write lock, and the
segmenting settings.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from sqlalchemy import insert, select
from sqlalchemy.exc import DatabaseError, OperationalError

from ..config import DEFAULT_MIN_TAIL_SECONDS, DEFAULT_SEGMENT_SECONDS, store_dir
from ..errors import StoreDamaged, StoreError, StoreNotFound
from . import db as dbmod
from .base import INDEX_DIR, LOCK_NAME, StoreBase
from .catalog import Catalog
from .commits import Commits
from .damage import file_problem
from .encoders import EncoderLifecycle
from .health import CheckReport, Health
from .index_sync import IndexSync
from .lock import ReentrantLock, WriteLock
from .rows import (
    DB_NAME,
    VECTOR_DTYPE,
    EncoderRecord,
    KnownVideo,
    SegmentRow,
    SegmentWrite,
    VideoWrite,
    pack_vector,
    unpack_vectors,
)
from .runlog import RunLog
from .schema import Meta

__all__ = ["CheckReport", "EncoderRecord", "KnownVideo", "SegmentRow", "SegmentWrite", "Store", "VideoWrite",
           "VECTOR_DTYPE", "pack_vector", "unpack_vectors"]  # fmt: skip


class Store(Catalog, Commits, EncoderLifecycle, RunLog, IndexSync, Health, StoreBase):
    """Open with ``Store.open(path)``; close with ``close()`` or a ``with`` block."""

    # -- opening -----------------------------------------------------------------------------
    @classmethod
    def open(cls, root: str | os.PathLike[str] | None = None, *, create: bool = True) -> Store:
        """Open (and with ``create``, initialise) the store at ``root`` or the default location.

        Pending Alembic migrations are applied here, so code always sees the current schema. A
        store on read-only media opens read-only: search works, writing says why it cannot.
        """
        path = store_dir(root)
        db_path = path / DB_NAME
        try:
            exists = db_path.exists()
        except OSError as exc:  # a folder above it is unreadable
            raise StoreError(f"cannot reach the store at {path}: {exc.strerror or exc}") from None
        if exists:
            problem = file_problem(db_path)
            if problem and db_path.stat().st_size == 0:
                problem = _unless_being_created(db_path, problem)
            if problem:
                # Never a new schema where a file was: a 0-byte database may be a copy cut short,
                # and building over it would orphan the FAISS files that hold its vectors.
                raise StoreDamaged(
                    f"the store database {db_path} is damaged: {problem}. Nothing was changed; "
                    "`vsearch check --repair` says what can be recovered"
                )
        if not exists:
            if not create:
                raise StoreNotFound(f"no vsearch store at {path} (index something first, or pass --store)")
            try:
                (path / INDEX_DIR).mkdir(parents=True, exist_ok=True)
            except OSError as exc:  # an unreadable or read-only folder on the way
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
        except DatabaseError as exc:
            engine.dispose()
            if not isinstance(exc, OperationalError):  # "malformed", "not a database": damage, not load
                raise StoreDamaged(
                    f"the store database {db_path} is damaged: {exc.orig}. Nothing was changed; "
                    "`vsearch check --repair` salvages what SQLite can still read"
                ) from None
            if shutil.disk_usage(path).free < (256 << 10):
                raise StoreError(
                    f"cannot open the store at {path}: its disk is full (free some space; nothing was lost)"
                ) from None
            raise StoreError(f"cannot open the store database {db_path}: {exc.orig}") from None
        except StoreError:
            engine.dispose()
            raise
        return store

    @staticmethod
    def check_creatable(root: str | os.PathLike[str] | None = None) -> Path:
        """Refuse, before any slow work (a model download, a load), a store location that
        cannot become a store: an existing file, or a path under no writable folder."""
        path = store_dir(root)
        try:
            if path.exists() and not path.is_dir():
                raise StoreError(f"cannot create a store at {path}: it is a file, not a folder")
            anc = path
            while not anc.exists() and anc != anc.parent:
                anc = anc.parent
        except OSError as exc:
            raise StoreError(f"cannot reach the store at {path}: {exc.strerror or exc}") from None
        if not anc.is_dir():
            raise StoreError(f"cannot create a store at {path}: {anc} is a file, not a folder")
        if not os.access(anc, os.W_OK | os.X_OK):
            raise StoreError(f"cannot create a store at {path}: {anc} is not writable")
        return path

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
                        # A library caller's new store keeps fixed windows until told (index
                        # segmenter=...); `vsearch index` makes new stores cut at shots.
                        {"key": "segmenter", "value": "fixed"},
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

    def lock(self, purpose: str, wait: bool = False) -> ReentrantLock:
        """The store's write lock. Re-entrant per ``Store`` object: a caller may take it early
        (the CLI does, before loading a model) and the library call inside takes it again."""
        if self.readonly:
            raise StoreError(
                f"the store at {self.root} is read-only (read-only folder or medium): it can be searched, not changed"
            )
        if self._lock is not None:
            self._lock.depth += 1
            return self._lock
        lock = ReentrantLock(self, WriteLock(self.root / LOCK_NAME, purpose))
        lock.inner.acquire(wait=wait)
        self._lock = lock
        return lock

    def segmenting(self) -> tuple[float, float]:
        """(segment length, minimum tail) in seconds, fixed when the store is created."""
        with self.Session() as s:
            return float(self._meta(s, "segment_seconds")), float(self._meta(s, "min_tail_seconds"))

    def set_segmenting(self, segment_seconds: float, min_tail_seconds: float | None = None, *, resegment: bool = False) -> None:
        """Change segmenting; only allowed while the store holds no videos (it would mix two kinds),
        or with ``resegment`` (the caller re-plans every stored video: ``index --resegment``)."""
        current = self.segmenting()
        wanted = (segment_seconds, current[1] if min_tail_seconds is None else min_tail_seconds)
        if wanted == current:
            return
        if not segment_seconds > 0:
            raise StoreError(f"the segment length must be positive, got {segment_seconds:g} s")
        if self.count_videos() and not resegment:
            raise StoreError(
                f"this store cuts videos into {current[0]:g} s segments; it already holds videos, so "
                f"{wanted[0]:g} s would mix two segmentings. Re-plan them with --resegment, or use a new store (--store)."
            )
        with self.Session.begin() as s:
            self._set_meta(s, "segment_seconds", repr(float(wanted[0])))
            self._set_meta(s, "min_tail_seconds", repr(float(wanted[1])))

    def segmenter(self) -> str:
        """How this store cuts videos: "shots" (at the footage's cuts, long shots split) or "fixed"
        (windows of the segment length). Stores from before shots are "fixed"."""
        with self.Session() as s:
            row = s.get(Meta, "segmenter")
            return row.value if row is not None else "fixed"

    def set_segmenter(self, mode: str, *, resegment: bool = False) -> None:
        """Change the segmenter; refused (one line, nothing changed) while the store holds videos
        cut the other way, unless ``resegment`` (the caller re-plans every stored video)."""
        from ..video.segmenting import SEGMENTERS

        if mode not in SEGMENTERS:
            raise StoreError(f"unknown segmenter {mode!r}: use one of {', '.join(SEGMENTERS)}")
        current = self.segmenter()
        if mode == current:
            return
        if self.count_videos() and not resegment:
            raise StoreError(
                f"this store cuts videos {_SEGMENTER_WORDS[current]}; it already holds videos, so --segments {mode} "
                f"would mix two segmentings. Re-plan them with --resegment --segments {mode}, or use a new store (--store)."
            )
        with self.Session.begin() as s:
            self._set_meta(s, "segmenter", mode)


#: How ``set_segmenter``'s refusal names a mode.
_SEGMENTER_WORDS = {"shots": "at shots (--segments shots)", "fixed": "into fixed windows (--segments fixed)"}


#: How long a 0-byte database may stay empty while another process is creating the store.
CREATION_GRACE_S = 3.0


def _unless_being_created(db_path: Path, problem: str) -> str | None:
    """None when a 0-byte database fills within ``CREATION_GRACE_S`` (another process opening a
    brand-new store at the same moment: SQLite makes the file, then writes its header), else
    ``problem``: a file that stays empty is a leftover, never a store to initialise."""
    import time

    deadline = time.monotonic() + CREATION_GRACE_S
    while time.monotonic() < deadline:
        time.sleep(0.02)
        try:
            if db_path.stat().st_size > 0:
                return file_problem(db_path)
        except OSError:
            return problem
    return problem
