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
from .recall import exact_rerank, recall_meter, tune_nprobe
from .rows import VECTOR_DTYPE, EncoderRecord, unpack_vectors
from .rows import chunks as _chunks
from .schema import Embedding, Segment, Tombstone, VectorIndexConfig, utcnow
from .vectors import (
    TARGET_RECALL,
    TRAIN_PER_LIST,
    IndexPlan,
    SearchResult,
    VectorIndex,
    choose_index,
    index_file_name,
    list_index_files,
    rerank_depth,
)

#: Re-measure an IVF's recall once this share of its vectors arrived after training.
DRIFT_CHECK_GROWTH = 0.25
#: Retrain when recall at the tuned nprobe fell this far below the target and doubling nprobe
#: does not bring it back (the centroids no longer describe the collection).
DRIFT_TOLERANCE = 0.02


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
        ids, _videos, vecs = self._all_vectors_by_video(s, encoder_id, until)
        return ids, vecs

    def _all_vectors_by_video(self, s: Session, encoder_id: int, until: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(segment ids, their video ids, float32 vectors) of everything stored up to ``until``."""
        q = (
            select(Embedding.segment_id, Segment.video_id, Embedding.vector)
            .join(Segment, Segment.id == Embedding.segment_id)
            .where(Embedding.encoder_id == encoder_id, Embedding.gen <= until)
        )
        ids, videos, blobs = [], [], []
        for sid, vid, blob in s.execute(q).yield_per(20000):
            ids.append(sid)
            videos.append(vid)
            blobs.append(blob)
        dim = len(blobs[0]) // np.dtype(VECTOR_DTYPE).itemsize if blobs else 0
        return np.array(ids, np.int64), np.array(videos, np.int64), unpack_vectors(blobs, dim)

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
        "ivf-sq8", "ivf-pq" force one. IVF kinds are trained on a sample of the stored vectors
        (``TRAIN_PER_LIST`` per list) and their nprobe tuned on held-out queries for
        recall@10 >= 0.95 against exact search (or pinned with ``nprobe``). The choice, its
        measured recall, build time and size are recorded (``vector_indexes``) and shown by
        ``status``.
        """
        import time

        t0 = time.perf_counter()
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
                ids, videos, vecs = self._all_vectors_by_video(s, rec.id, gen)
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
                    params["nprobe"], params["recall_at_10"] = nprobe, round(recall_meter(index, ids, vecs, videos)(nprobe), 4)
                else:
                    probe, recall = tune_nprobe(index, ids, vecs, videos)
                    params["nprobe"], params["recall_at_10"] = probe, round(recall, 4)
                params["trained_on"] = len(ids)
                params["recall_checked_at"] = len(ids)
            del vecs, videos
            params["bytes"] = index.nbytes()
            params["build_s"] = round(time.perf_counter() - t0, 1)
            self._record_params(rec.id, plan.kind, params)
            self._index, self._index_gen, self._index_encoder = index, gen, rec.id
            for _fgen, path in list_index_files(self.index_dir, rec.id):
                path.unlink(missing_ok=True)
        self.save_index()
        return {"kind": plan.kind, "vectors": index.ntotal, **params}

    def apply_index_policy(self) -> dict | None:
        """After indexing: keep the index right for its size without needless rebuilds.

        - flat → IVF past the size threshold (and back, if the store shrank below it);
        - an IVF takes new vectors without retraining (its lists just grow); once
          ``DRIFT_CHECK_GROWTH`` of its vectors arrived after the last check, its recall is
          measured again on held-out queries. Recall within ``DRIFT_TOLERANCE`` of the target:
          recorded, nothing else. Below: nprobe is re-tuned (cheap); only if that cannot reach
          the target within twice the tuned nprobe is the index retrained.

        Only for the automatic policy; a pinned kind is left alone. Returns what was done.
        """
        rec = self.encoder()
        if rec is None:
            return None
        with self.Session() as s:
            cfg = s.get(VectorIndexConfig, rec.id)
        if cfg is not None and cfg.params.get("policy") == "pinned":
            return None
        index = self.vector_index()
        n = index.ntotal
        kind = cfg.kind if cfg else "flat"
        wanted = choose_index(n, int(rec.spec["dim"]), "auto").kind
        if (wanted == "flat") != (kind == "flat") or (kind == "ivf" and wanted != "ivf" and n > 4 * int(cfg.params.get("trained_on", n))):
            return self.rebuild_index("auto")
        if kind == "flat":
            return None
        params = dict(cfg.params)
        checked = int(params.get("recall_checked_at", params.get("trained_on", n)))
        if n < checked * (1 + DRIFT_CHECK_GROWTH):
            return None
        return self._check_drift(rec, index, params, n)

    def _check_drift(self, rec: EncoderRecord, index: VectorIndex, params: dict, n: int) -> dict:
        with self.Session() as s, s.begin():
            ids, videos, vecs = self._all_vectors_by_video(s, rec.id, self._index_gen)
        recall_at = recall_meter(index, ids, vecs, videos)
        tuned = int(params.get("nprobe", index.nprobe))
        recall = recall_at(tuned)
        action = "kept"
        if recall < TARGET_RECALL - DRIFT_TOLERANCE:
            probe, recall2 = tune_nprobe(index, ids, vecs, videos)
            if recall2 >= TARGET_RECALL and probe <= 2 * tuned:
                action, tuned, recall = "retuned", probe, recall2
            else:
                del ids, vecs, videos
                event = {"vectors": n, "recall_at_10": round(recall, 4), "action": "retrained"}
                out = self.rebuild_index("auto")
                history = [*list(params.get("drift", []))[-9:], event]
                self._record_params(rec.id, out["kind"], {k: v for k, v in out.items() if k not in ("kind", "vectors")} | {"drift": history})
                return out | {"drift": history}
        index.nprobe = tuned
        params.update(nprobe=tuned, recall_at_10=round(recall, 4), recall_checked_at=n)
        params["drift"] = [*list(params.get("drift", []))[-9:], {"vectors": n, "recall_at_10": round(recall, 4), "action": action}]
        self._record_params(rec.id, index.kind, params)
        return {"kind": index.kind, "vectors": n, **params}

    def _record_params(self, encoder_id: int, kind: str, params: dict) -> None:
        with self.Session.begin() as s:
            s.merge(VectorIndexConfig(encoder_id=encoder_id, kind=kind, params=params, updated_at=utcnow()))

    # -- searching ---------------------------------------------------------------------------
    def nearest(self, index: VectorIndex, queries: np.ndarray, k: int, allowed: np.ndarray | None = None) -> SearchResult:
        """The ``k`` nearest stored segments of each query, exact where the index is lossy.

        SQ8 and PQ codes only shortlist: ``rerank_depth(k)`` candidates are re-scored from the
        stored vectors (SQLite, the truth), so scores are the same cosines an exact search
        gives, and recall is that of the probed lists. ``allowed`` restricts the search to
        those segment ids (``VectorIndex.search``).
        """
        if not index.reranked:
            return index.search(queries, k, allowed)
        q = np.ascontiguousarray(queries, np.float32)
        cand = index.search(q, rerank_depth(k), allowed).ids
        rec_id = self._index_encoder
        scores, ids = exact_rerank(cand, q, lambda wanted: self.stored_vectors(rec_id, wanted, index.dim), min(k, cand.shape[1]))
        return SearchResult(scores, ids)

    def stored_vectors(self, encoder_id: int, segment_ids: np.ndarray, dim: int) -> np.ndarray:
        """Vectors of ``segment_ids`` (in that order) as stored: float16 in SQLite, as float32."""
        wanted = [int(i) for i in segment_ids]
        found: dict[int, bytes] = {}
        with self.Session() as s:
            for chunk in _chunks(wanted, 900):
                q = select(Embedding.segment_id, Embedding.vector).where(
                    Embedding.encoder_id == encoder_id, Embedding.segment_id.in_(chunk)
                )
                found.update((int(sid), blob) for sid, blob in s.execute(q))
        zero = bytes(2 * dim)  # a segment deleted since the index was read scores 0 and sinks
        return unpack_vectors([found.get(i, zero) for i in wanted], dim)

def training_sample(vectors: np.ndarray, nlist: int, per_list: int = TRAIN_PER_LIST, seed: int = 0) -> np.ndarray:
    """At most ``per_list`` points per centroid for k-means (FAISS's own default cap)."""
    cap = per_list * nlist
    if len(vectors) <= cap:
        return vectors
    return vectors[np.random.default_rng(seed).choice(len(vectors), size=cap, replace=False)]
