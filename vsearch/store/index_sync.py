"""Keeping FAISS in step with SQLite, and choosing what kind of index to build.

SQLite is the truth; a FAISS file is a cache named by the generation it reflects. Loading takes
the newest usable file and replays what happened since (tombstones, then adds); a missing,
damaged or too-old file is rebuilt from the database. Writes in this process update the loaded
index in place when nobody else wrote in between. Mixed into ``Store``.
"""

from __future__ import annotations

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ..errors import EmptyStore, EncoderMismatch, StoreError
from .base import StoreBase, storage_errors
from .rows import VECTOR_DTYPE, EncoderRecord, unpack_vectors
from .schema import Embedding, Tombstone, VectorIndexConfig, utcnow
from .vectors import IndexPlan, VectorIndex, choose_index, index_file_name, list_index_files, recall_meter, tune_nprobe


class IndexSync(StoreBase):
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
        index = VectorIndex.build(plan, dim, training_sample(vecs, plan.nlist))
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

    @storage_errors
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

    @storage_errors
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
                index = VectorIndex.build(plan, dim, training_sample(vecs, plan.nlist))
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


def training_sample(vectors: np.ndarray, nlist: int, per_list: int = 256, seed: int = 0) -> np.ndarray:
    """At most ``per_list`` points per centroid for k-means (FAISS's own default cap)."""
    cap = per_list * nlist
    if len(vectors) <= cap:
        return vectors
    return vectors[np.random.default_rng(seed).choice(len(vectors), size=cap, replace=False)]
