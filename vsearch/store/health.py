"""The store's health: ``check`` (FAISS against SQLite, half-written videos, the newest index
file, thumbnails) and ``status``. Mixed into ``Store``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import delete, func, select

from ..errors import StoreError
from .base import StoreBase
from .rows import DB_NAME
from .rows import chunks as _chunks
from .schema import Embedding, Failure, Run, Segment, Thumbnail, VectorIndexConfig, Video
from .vectors import VectorIndex, list_index_files

if TYPE_CHECKING:
    from .rows import EncoderRecord


@dataclass
class CheckReport:
    generation: int
    db_vectors: int
    index_vectors: int
    only_in_index: list[int] = field(default_factory=list)
    only_in_db: list[int] = field(default_factory=list)
    segments_without_vector: list[int] = field(default_factory=list)
    videos_without_segments: list[int] = field(default_factory=list)
    index_file_generation: int | None = None
    #: Why the newest FAISS file cannot be used (unreadable, wrong dimension, ids that are not
    #: the database's at its generation); None when it is sound or there is none.
    index_file_problem: str | None = None
    #: Segments without a stored thumbnail (not an inconsistency: `vsearch thumbnails` makes them).
    without_thumbnail: int = 0
    #: Thumbnails whose segment is gone (cannot happen with foreign keys on; checked anyway).
    orphan_thumbnails: int = 0
    repaired: bool = False

    @property
    def ok(self) -> bool:
        return not (
            self.only_in_index or self.only_in_db or self.segments_without_vector or self.videos_without_segments
            or self.index_file_problem or self.orphan_thumbnails
        )  # fmt: skip


class Health(StoreBase):
    """``check`` and ``status`` (``Store`` provides sessions, the encoder and the index)."""

    def check(self, repair: bool = False) -> CheckReport:
        """Compare FAISS with SQLite and look for half-written videos; optionally repair.

        Repair rebuilds the index from the database and deletes segments without vectors and
        videos without segments, so the next ``index`` run re-embeds those files.
        """
        rec = self.encoder()
        with self.Session() as s:
            gen = int(self._meta(s, "generation"))
            seg_ids = set(s.scalars(select(Segment.id)).all())
            emb_ids = set(s.scalars(select(Embedding.segment_id).where(Embedding.encoder_id == (rec.id if rec else -1))).all())
            empty_videos = s.scalars(select(Video.id).where(~Video.segments.any())).all()
            thumb_ids = set(s.scalars(select(Thumbnail.segment_id)).all())
        files = list_index_files(self.index_dir, rec.id) if rec else []
        problem = self.index_file_problem(rec) if rec else None
        idx_ids: set[int] = set()
        if rec is not None:
            with self._index_lock:
                self._index = None
                idx_ids = set(self.vector_index().ids().tolist())
        report = CheckReport(
            generation=gen,
            db_vectors=len(emb_ids),
            index_vectors=len(idx_ids),
            only_in_index=sorted(idx_ids - emb_ids),
            only_in_db=sorted(emb_ids - idx_ids),
            segments_without_vector=sorted(seg_ids - emb_ids),
            videos_without_segments=sorted(empty_videos),
            index_file_generation=files[0][0] if files else None,
            index_file_problem=problem,
            without_thumbnail=len(seg_ids - thumb_ids),
            orphan_thumbnails=len(thumb_ids - seg_ids),
        )
        if repair and not report.ok:
            if report.videos_without_segments or report.segments_without_vector:
                with self.Session.begin() as s:
                    gen = self._bump_generation(s)
                    bad_videos = set(report.videos_without_segments)
                    for chunk in _chunks(report.segments_without_vector, 500):
                        bad_videos.update(s.scalars(select(Segment.video_id).where(Segment.id.in_(chunk))).all())
                    self._delete_videos(s, bad_videos, gen)
            if report.orphan_thumbnails:
                with self.Session.begin() as s:
                    s.execute(delete(Thumbnail).where(Thumbnail.segment_id.not_in(select(Segment.id))))
            if rec is not None:
                self.rebuild_index()
            report.repaired = True
        return report

    def index_file_problem(self, rec: EncoderRecord | None = None) -> str | None:
        """Load the newest FAISS file on its own and say what is wrong with it, if anything.

        Loading the index for a search quietly falls back to an older file or a rebuild, which
        is right for a reader but hides damage from ``check`` and ``status``.
        """
        rec = rec or self.encoder()
        if rec is None:
            return None
        files = list_index_files(self.index_dir, rec.id)
        if not files:
            return None
        fgen, path = files[0]
        dim = int(rec.spec["dim"])
        try:
            index = VectorIndex.read(path, dim)
        except (RuntimeError, StoreError, OSError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return f"{path.name} cannot be read ({first[:120]})"
        if index.index.d != dim:
            return f"{path.name} holds {index.index.d}-dimensional vectors, the encoder makes {dim}"
        return None

    def status(self) -> dict:
        """Everything ``vsearch status`` shows, as plain data."""
        rec = self.encoder()
        with self.Session() as s:
            videos = int(s.scalar(select(func.count()).select_from(Video)))
            segments = int(s.scalar(select(func.count()).select_from(Segment)))
            failures = int(s.scalar(select(func.count()).select_from(Failure)))
            thumbs = int(s.scalar(select(func.count()).select_from(Thumbnail)))
            seconds = float(s.scalar(select(func.coalesce(func.sum(Video.duration), 0.0))))
            gen = int(self._meta(s, "generation"))
            seg_s = float(self._meta(s, "segment_seconds"))
            segmenter = self._meta(s, "segmenter", "fixed")
            with_cuts = int(s.scalar(select(func.count()).select_from(Video).where(Video.cuts.is_not(None))))
            cfg = s.get(VectorIndexConfig, rec.id) if rec else None
            kind = cfg.kind if cfg else "flat"
            index_params = dict(cfg.params) if cfg else {}
            last = s.scalars(select(Run).where(Run.kind == "index").order_by(Run.id.desc()).limit(1)).first()
            last_run = None
            if last is not None:
                last_run = {
                    "id": last.id,
                    "status": last.status,
                    "started_at": last.started_at.isoformat(timespec="seconds"),
                    "finished_at": last.finished_at.isoformat(timespec="seconds") if last.finished_at else None,
                    "counts": last.counts or {},
                }
        files = list_index_files(self.index_dir, rec.id) if rec else []
        db_bytes = sum(p.stat().st_size for p in self.root.glob(DB_NAME + "*") if p.is_file())
        idx_bytes = sum(p.stat().st_size for _g, p in files if p.exists())
        return {
            "store": str(self.root),
            "encoder": None
            if rec is None
            else {
                "name": rec.name,
                "source": rec.source,
                "fingerprint": rec.fingerprint,
                "family": rec.spec.get("family"),
                "dim": rec.spec.get("dim"),
                "frames": rec.spec.get("frames"),
                "image_size": rec.spec.get("pixels", {}).get("image_size"),
            },
            "videos": videos,
            "segments": segments,
            "failures": failures,
            "thumbnails": thumbs,
            "video_seconds": seconds,
            "segment_seconds": seg_s,
            "segmenter": segmenter,
            #: Videos whose segments follow detected shots (the rest were cut into fixed windows).
            "videos_with_cuts": with_cuts,
            "generation": gen,
            "index": {
                "kind": kind,
                "params": index_params,
                "file_generation": files[0][0] if files else None,
                "bytes": idx_bytes,
                "problem": self.index_file_problem(rec) if rec else None,
            },
            "database_bytes": db_bytes,
            "last_run": last_run,
        }
