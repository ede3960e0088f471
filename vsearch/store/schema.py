"""The SQLite schema (SQLAlchemy 2 ORM). Alembic revisions in ``migrations/`` create it.

SQLite is the source of truth: every segment's embedding is stored here (float16), so the FAISS
index can be rebuilt from this database at any time. Ids are never reused
(``AUTOINCREMENT``), which is what lets a FAISS file at generation G catch up by replaying
"added since G" and "removed since G" (``tombstones``) without ambiguity.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Index, Integer, LargeBinary, String, Text, TypeDecorator
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class FsPath(TypeDecorator):
    """A filesystem path stored as its raw bytes.

    File names need not be UTF-8 (Linux allows any bytes but ``/`` and NUL); storing
    ``os.fsencode(path)`` keeps them exact and byte order keeps prefix queries cheap.
    """

    impl = LargeBinary
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return None if value is None else os.fsencode(value)

    def process_result_value(self, value, dialect):
        return None if value is None else os.fsdecode(bytes(value))


class Base(DeclarativeBase):
    pass


class Meta(Base):
    """Store-wide settings and counters: ``generation``, ``encoder_id``, ``segment_seconds``,
    ``segmenter`` ("shots" or "fixed"), ..."""

    __tablename__ = "meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Encoder(Base):
    __tablename__ = "encoders"
    __table_args__ = {"sqlite_autoincrement": True}
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    source: Mapped[str | None] = mapped_column(Text)
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    spec: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Video(Base):
    __tablename__ = "videos"
    __table_args__ = {"sqlite_autoincrement": True}
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(FsPath, unique=True)
    size: Mapped[int] = mapped_column(Integer)
    mtime_ns: Mapped[int] = mapped_column(Integer)
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    duration: Mapped[float] = mapped_column(Float, index=True)
    fps: Mapped[float] = mapped_column(Float)
    num_frames: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    codec: Mapped[str | None] = mapped_column(String(64))
    decoder: Mapped[str | None] = mapped_column(String(16))
    indexed_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    #: Problems that did not stop indexing (e.g. segments that could not be decoded).
    warnings: Mapped[str | None] = mapped_column(Text)
    #: When the footage was recorded (POSIX seconds, UTC): the container's ``creation_time``
    #: where present, else the file's mtime; ``recorded_from`` says which ("container", "mtime").
    recorded_at: Mapped[float | None] = mapped_column(Float, index=True)
    recorded_from: Mapped[str | None] = mapped_column(String(16))
    #: How the frames were chosen (``vsearch.video.readplan``): "exact" or "fast".
    sampling: Mapped[str | None] = mapped_column(String(8))
    #: The cut times (seconds) a ``shots`` store planned the segments from (``video.shots``);
    #: None for a video cut into fixed windows.
    cuts: Mapped[list | None] = mapped_column(JSON(none_as_null=True))
    segments: Mapped[list[Segment]] = relationship(
        back_populates="video", cascade="all, delete-orphan", passive_deletes=True, order_by="Segment.idx"
    )


class Segment(Base):
    __tablename__ = "segments"
    __table_args__ = {"sqlite_autoincrement": True}
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    video_id: Mapped[int] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"), index=True)
    idx: Mapped[int] = mapped_column(Integer)
    start_s: Mapped[float] = mapped_column(Float)
    end_s: Mapped[float] = mapped_column(Float)
    start_frame: Mapped[int] = mapped_column(Integer)
    end_frame: Mapped[int] = mapped_column(Integer)
    video: Mapped[Video] = relationship(back_populates="segments")


class Embedding(Base):
    """One segment's vector under one encoder. ``gen`` is the store generation that added it."""

    __tablename__ = "embeddings"
    __table_args__ = (Index("ix_embeddings_encoder_gen", "encoder_id", "gen"),)
    segment_id: Mapped[int] = mapped_column(ForeignKey("segments.id", ondelete="CASCADE"), primary_key=True)
    encoder_id: Mapped[int] = mapped_column(ForeignKey("encoders.id", ondelete="CASCADE"), primary_key=True)
    gen: Mapped[int] = mapped_column(Integer)
    frame_indices: Mapped[list] = mapped_column(JSON)
    vector: Mapped[bytes] = mapped_column(LargeBinary)  # float16, little-endian, dim values


class Thumbnail(Base):
    """A segment's picture for the search page: a small JPEG of a frame inside the segment
    (its middle sampled frame), made at index time from frames the encoder was fed anyway."""

    __tablename__ = "thumbnails"
    segment_id: Mapped[int] = mapped_column(ForeignKey("segments.id", ondelete="CASCADE"), primary_key=True)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    jpeg: Mapped[bytes] = mapped_column(LargeBinary)


class Tombstone(Base):
    """A vector removed at generation ``gen``; lets older FAISS files catch up. Pruned after saves."""

    __tablename__ = "tombstones"
    __table_args__ = (Index("ix_tombstones_encoder_gen", "encoder_id", "gen"), {"sqlite_autoincrement": True})
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    encoder_id: Mapped[int] = mapped_column(Integer)
    segment_id: Mapped[int] = mapped_column(Integer)
    gen: Mapped[int] = mapped_column(Integer)


class Failure(Base):
    """The latest failure of a file; cleared when the file later indexes or disappears."""

    __tablename__ = "failures"
    __table_args__ = {"sqlite_autoincrement": True}
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(FsPath, unique=True)
    reason: Mapped[str] = mapped_column(Text)
    size: Mapped[int | None] = mapped_column(Integer)
    mtime_ns: Mapped[int | None] = mapped_column(Integer)
    run_id: Mapped[int | None] = mapped_column(Integer)
    failed_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Run(Base):
    """One ``index`` / ``remove`` / ``reindex`` invocation: what it did and where time went."""

    __tablename__ = "runs"
    __table_args__ = {"sqlite_autoincrement": True}
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(32))  # running | completed | interrupted | failed
    started_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    encoder_id: Mapped[int | None] = mapped_column(Integer)
    roots: Mapped[list | None] = mapped_column(JSON)
    counts: Mapped[dict | None] = mapped_column(JSON)
    timings: Mapped[dict | None] = mapped_column(JSON)
    pid: Mapped[int | None] = mapped_column(Integer)


class VectorIndexConfig(Base):
    """How an encoder's FAISS index is built: ``flat``, ``ivf`` or ``ivf-pq``, with its parameters."""

    __tablename__ = "vector_indexes"
    encoder_id: Mapped[int] = mapped_column(ForeignKey("encoders.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    params: Mapped[dict] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
