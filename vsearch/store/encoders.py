"""The store's encoder lifecycle: bind the first encoder, refuse another, and re-embed into a
staged encoder that is swapped in atomically when complete. Mixed into ``Store``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from ..errors import EncoderMismatch
from .base import StoreBase, storage_errors
from .rows import EncoderRecord, pack_vector, record_of
from .rows import chunks as _chunks
from .schema import Embedding, Encoder, Meta, Segment, Tombstone, Video
from .vectors import VectorIndex, index_file_name, list_index_files


class EncoderLifecycle(StoreBase):
    def encoder(self) -> EncoderRecord | None:
        with self.Session() as s:
            eid = self._meta(s, "encoder_id")
            if eid is None:
                return None
            return record_of(s.get(Encoder, int(eid)))

    @storage_errors
    def bind_encoder(self, encoder) -> EncoderRecord:
        """Make ``encoder`` the store's encoder if it has none; refuse a different one."""
        current = self.encoder()
        if current is not None:
            self.check_encoder(encoder, current)
            return current
        with self.Session.begin() as s:
            row = self._encoder_row(s, encoder)
            self._set_meta(s, "encoder_id", str(row.id))
            return record_of(row)

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
            return record_of(row)

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
            return None if row is None else record_of(row)

    def videos_missing_vectors(
        self, encoder_id: int
    ) -> list[tuple[int, str, int, int, list[tuple[int, int, int, float, float]], tuple[float, ...] | None]]:
        """Videos with at least one segment lacking a vector from ``encoder_id``, with all their
        segments: (video id, path, size, mtime_ns, [(segment id, start_frame, end_frame, start_s, end_s)],
        the cut times its segments were planned from, or None for fixed windows)."""
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
                for vid in chunk:
                    v = videos[vid]
                    cuts = None if v.cuts is None else tuple(float(c) for c in v.cuts)
                    out.append((vid, v.path, v.size, v.mtime_ns, segs.get(vid, []), cuts))
            return out

    @storage_errors
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

    @storage_errors
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

