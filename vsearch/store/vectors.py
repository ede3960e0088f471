"""FAISS behind a small interface: add, remove, search, save, load. No SQL here.

Vectors are unit length, so inner product is cosine similarity. Ids are segment primary keys
(int64) through ``IndexIDMap2``. The CPU index is the master copy: deletes happen on it, and a
GPU copy for search is cloned from it when a GPU is present (no FAISS GPU index supports
``remove_ids``).

Index files are named by generation (``vectors-e<encoder>-g<generation>.faiss``), written to a
temporary name, fsynced and renamed, so a reader sees a whole old file or a whole new one.
"""

from __future__ import annotations

import math
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic import atomic_write
from ..errors import ConfigError, FaissMissing, StoreError

_FILE_RE = re.compile(r"^vectors-e(\d+)-g(\d+)\.faiss$")
_faiss = None
_faiss_lock = threading.Lock()


def import_faiss():
    """Import faiss once, with the settings vsearch relies on."""
    global _faiss
    if _faiss is None:
        with _faiss_lock:
            if _faiss is None:
                try:
                    import faiss
                except ImportError:
                    raise FaissMissing(
                        "FAISS is not installed. Install exactly one of: `pip install 'vsearch[cpu]'` "
                        "(faiss-cpu) or `pip install 'vsearch[gpu]'` (faiss-gpu, NVIDIA GPUs)."
                    ) from None
                # faiss-cpu 1.15 raised this to 128000, which sends batches of ~100 queries down a
                # 3.6x slower non-BLAS path (deps.md §3).
                faiss.cvar.distance_compute_blas_threshold = 20
                _faiss = faiss
    return _faiss


def gpu_available() -> bool:
    faiss = import_faiss()
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


def as_f32(vectors: np.ndarray, dim: int) -> np.ndarray:
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != dim:
        raise ValueError(f"expected vectors of shape (n, {dim}), got {x.shape}")
    return x


#: Up to this many vectors the automatic policy keeps exact search (about 20 ms per query at
#: 100k x 512 on 2 cores; 62 ms at 250k, 0.2 s at 1M). Above it: IVF with SQ8 codes, trained
#: on a sample, an HNSW coarse quantizer, and an exact re-rank from the stored vectors
#: (docs/scaling.md has the measurements behind each number here).
FLAT_MAX = 100_000
#: The automatic policy tunes nprobe until recall@10 against exact search reaches this.
TARGET_RECALL = 0.95
#: k-means gets this many training points per centroid at most (FAISS warns below 39 and
#: caps at 256 by default; 64 costs a quarter of 256 and loses nothing measurable).
TRAIN_PER_LIST = 64
#: k-means iterations (FAISS's default is 25; centroids move little after 10 on embeddings).
TRAIN_ITERATIONS = 10
#: HNSW links per node of the coarse quantizer (the index over centroids).
HNSW_M = 32
#: The coarse quantizer's search width while adding (each vector needs only its nearest list).
ADD_EF_SEARCH = 32
KINDS = ("flat", "ivf", "ivf-sq8", "ivf-pq")
#: Kinds whose codes are lossy: candidates are re-scored exactly from the stored vectors.
RERANKED_KINDS = ("ivf-sq8", "ivf-pq")


def rerank_depth(k: int) -> int:
    """How many candidates a lossy index returns for ``k`` results before the exact re-rank.

    SQ8 codes reorder near-ties (recall stops near 0.93 without a re-rank); 64 extra candidates
    bring the top 10 back to what the probed lists hold. PQ codes are coarser and need more.
    """
    return max(2 * k, k + 64)


@dataclass(frozen=True)
class IndexPlan:
    """What to build: a pure function of (size, dim, requested kind), as autofaiss does."""

    kind: str
    nlist: int = 0
    pq_m: int = 0
    pq_bits: int = 8

    def as_params(self) -> dict:
        return {k: v for k, v in (("nlist", self.nlist), ("pq_m", self.pq_m), ("pq_bits", self.pq_bits if self.pq_m else 0)) if v}

    def training_size(self) -> int:
        """Vectors k-means is trained on (0 for flat)."""
        return self.nlist * TRAIN_PER_LIST if self.nlist else 0

    def code_bytes(self, dim: int) -> int:
        """Bytes per stored vector (codes only; ids add 8): the memory model of the plan."""
        return {"flat": 4 * dim, "ivf": 4 * dim, "ivf-sq8": dim, "ivf-pq": self.pq_m * self.pq_bits // 8}[self.kind]


def choose_index(n: int, dim: int, kind: str = "auto", nlist: int | None = None, flat_max: int = FLAT_MAX) -> IndexPlan:
    """``auto``: exact up to ``flat_max`` vectors, IVF-SQ8 with an exact re-rank above.

    nlist ≈ 4·√n as a power of two (4,096 at 1M), never fewer than 39 points per list.
    ``ivf`` keeps float32 codes (4 bytes a dimension: 2 GB at 1M x 512); ``ivf-sq8`` one byte
    a dimension (512 MB at 1M), re-ranked exactly, so recall is the probed lists' recall;
    ``ivf-pq`` stores 8 dimensions per byte (64 bytes for 512-d), for collections whose SQ8
    codes would not fit in memory (10M x 512 is 5 GB in SQ8, 0.7 GB in PQ64).
    """
    if kind not in ("auto", *KINDS):
        raise ConfigError(f"unknown index kind {kind!r} (auto, {', '.join(KINDS)})")
    if kind == "flat" or (kind == "auto" and n <= flat_max):
        return IndexPlan("flat")
    lists = nlist or max(1, 2 ** round(math.log2(max(4 * math.sqrt(max(n, 1)), 1))))
    lists = max(1, min(lists, max(1, n // 39)))  # FAISS wants >= 39 training points per centroid
    if kind == "ivf-pq":
        m = next(m for m in (dim // 8, dim // 4, dim // 2, dim) if m and dim % m == 0)
        return IndexPlan("ivf-pq", lists, m, 8)
    if kind == "ivf":
        return IndexPlan("ivf", lists)
    return IndexPlan("ivf-sq8", lists)


@dataclass(frozen=True)
class SearchResult:
    scores: np.ndarray  # (nq, k) float32, -inf where FAISS had fewer than k results
    ids: np.ndarray  # (nq, k) int64, -1 padded


class VectorIndex:
    """A mutable id → vector index: exact (``IndexIDMap2(IndexFlatIP)``) or IVF / IVF-PQ."""

    def __init__(self, dim: int, index=None):
        faiss = import_faiss()
        self.dim = dim
        self.index = index if index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        if self.index.d != dim:
            raise StoreError(f"index holds {self.index.d}-d vectors, expected {dim}")
        self._gpu = None
        self._gpu_res = None

    @property
    def kind(self) -> str:
        name = type(import_faiss().downcast_index(self.index)).__name__
        return {"IndexIVFFlat": "ivf", "IndexIVFScalarQuantizer": "ivf-sq8", "IndexIVFPQ": "ivf-pq"}.get(name, "flat")

    @property
    def reranked(self) -> bool:
        """True when scores are approximate and the caller must re-rank from stored vectors."""
        return self.kind in RERANKED_KINDS

    @property
    def nprobe(self) -> int:
        faiss = import_faiss()
        ivf = faiss.try_extract_index_ivf(self.index)
        return int(ivf.nprobe) if ivf is not None else 0

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        faiss = import_faiss()
        ivf = faiss.try_extract_index_ivf(self.index)
        if ivf is not None:
            ivf.nprobe = int(max(1, min(value, ivf.nlist)))
            _tune_quantizer(faiss, ivf)
            self._gpu = None

    @classmethod
    def build(cls, plan: IndexPlan, dim: int, training: np.ndarray | None = None, seed: int = 0) -> VectorIndex:
        """An empty index of ``plan``'s kind; IVF kinds are trained on ``training`` first."""
        faiss = import_faiss()
        if plan.kind == "flat":
            return cls(dim)
        if training is None or len(training) < plan.nlist:
            raise StoreError(f"an {plan.kind} index with {plan.nlist} lists needs at least {plan.nlist} training vectors")
        ip = faiss.METRIC_INNER_PRODUCT
        if plan.kind == "ivf-sq8":
            # A fast coarse quantizer: HNSW over the centroids finds the lists to probe in
            # ~0.1 ms where a flat scan of 4,096 centroids takes ~1 ms. k-means itself runs on a
            # flat index (``clustering_index``): HNSW would be rebuilt at every iteration.
            quantizer = faiss.IndexHNSWFlat(dim, HNSW_M, ip)
            index = faiss.IndexIVFScalarQuantizer(quantizer, dim, plan.nlist, faiss.ScalarQuantizer.QT_8bit, ip)
            index.clustering_index = faiss.IndexFlatIP(dim)
        elif plan.kind == "ivf":
            quantizer = faiss.IndexFlatIP(dim)
            index = faiss.IndexIVFFlat(quantizer, dim, plan.nlist, ip)
        else:
            quantizer = faiss.IndexFlatIP(dim)
            index = faiss.IndexIVFPQ(quantizer, dim, plan.nlist, plan.pq_m, plan.pq_bits, ip)
        index.cp.seed = seed
        index.cp.niter = TRAIN_ITERATIONS
        index.cp.max_points_per_centroid = TRAIN_PER_LIST
        index.train(as_f32(training, dim))
        index.own_fields = True
        quantizer.this.disown()
        vi = cls(dim, index)
        vi.nprobe = max(1, plan.nlist // 16)
        return vi

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids) == 0:
            return
        faiss = import_faiss()
        ivf = faiss.try_extract_index_ivf(self.index)
        hnsw = faiss.downcast_index(ivf.quantizer) if ivf is not None else None
        if isinstance(hnsw, faiss.IndexHNSW):
            # Adding assigns each vector to its one nearest list: a narrow graph search does it
            # (searching needs efSearch >= nprobe; adding 1M vectors at that width took minutes).
            hnsw.hnsw.efSearch = ADD_EF_SEARCH
        try:
            self.index.add_with_ids(as_f32(vectors, self.dim), np.ascontiguousarray(ids, dtype=np.int64))
        finally:
            if isinstance(hnsw, faiss.IndexHNSW):
                _tune_quantizer(faiss, ivf)
        self._gpu = None

    def remove(self, ids: np.ndarray) -> int:
        if len(ids) == 0:
            return 0
        faiss = import_faiss()
        removed = self.index.remove_ids(faiss.IDSelectorBatch(np.ascontiguousarray(ids, dtype=np.int64)))
        self._gpu = None
        return int(removed)

    def ids(self) -> np.ndarray:
        faiss = import_faiss()
        ivf = faiss.try_extract_index_ivf(self.index)
        if ivf is None:
            return faiss.vector_to_array(self.index.id_map).astype(np.int64)
        inv = ivf.invlists
        parts = [faiss.rev_swig_ptr(inv.get_ids(i), inv.list_size(i)).copy() for i in range(ivf.nlist) if inv.list_size(i)]
        return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None) -> SearchResult:
        """Top ``k`` ids per query; with ``allowed``, only among those ids.

        A restricted IVF search probes every list (the members may sit anywhere) but computes
        distances only for members, so its cost is one id test per stored vector plus the
        members' distances: the exact scan of a small subset, without reading it from disk.
        """
        q = as_f32(queries, self.dim)
        k = max(1, min(int(k), max(self.ntotal, 1)))
        if allowed is None:
            ivf = faiss_ivf(self.index)
            wide = None
            if ivf is not None:
                # One query: split its lists over the threads; a batch: one query per thread.
                ivf.parallel_mode = 1 if len(q) == 1 else 0
                wide = self._wider(ivf, k)
            if wide is None:
                scores, ids = self._search_index().search(q, k)
            else:
                scores, ids = self.index.search(q, k, params=wide)
        else:
            scores, ids = self.index.search(q, k, params=self._restricted(np.ascontiguousarray(allowed, np.int64)))
        scores = np.where(ids < 0, -np.inf, scores).astype(np.float32)
        return SearchResult(scores, ids)

    def _wider(self, ivf, k: int):
        """Search parameters probing enough lists to hold ``k`` results, or None if nprobe does.

        An IVF answers from the lists it probes only: asked for more than they hold (a deep
        over-fetch for best-per-video or a broad filter), it would return fewer than ``k``. The
        probe count grows to twice the lists that ``k`` vectors fill on average.
        """
        per_list = max(1.0, self.ntotal / max(1, ivf.nlist))
        need = math.ceil(2 * k / per_list)
        if need <= ivf.nprobe:
            return None
        probe = int(min(ivf.nlist, need))
        return _ivf_params(ivf, probe, quantizer_width(probe))

    def _restricted(self, allowed: np.ndarray):
        faiss = import_faiss()
        sel = faiss.IDSelectorBatch(allowed)
        ivf = faiss.try_extract_index_ivf(self.index)
        # Every list probed; the graph over the centroids must return all of them.
        params = faiss.SearchParameters() if ivf is None else _ivf_params(ivf, int(ivf.nlist), int(ivf.nlist))
        params.sel = sel
        params._keep_sel = sel
        return params

    def _search_index(self):
        """The GPU copy when a GPU is present (made lazily, dropped on every change), else the CPU index."""
        if self.ntotal == 0 or not gpu_available():
            return self.index
        if self._gpu is None:
            faiss = import_faiss()
            if self._gpu_res is None:
                self._gpu_res = faiss.StandardGpuResources()
            opts = faiss.GpuClonerOptions()
            opts.useFloat16 = os.environ.get("VSEARCH_GPU_FP16", "0") == "1"
            self._gpu = faiss.index_cpu_to_gpu(self._gpu_res, 0, self.index, opts)
        return self._gpu

    # -- files -------------------------------------------------------------------------------
    def write(self, path: Path) -> None:
        """Write the index file atomically and durably (``vsearch.atomic``)."""
        faiss = import_faiss()
        atomic_write(path, lambda tmp: faiss.write_index(self.index, tmp))

    @classmethod
    def read(cls, path: Path, dim: int) -> VectorIndex:
        faiss = import_faiss()
        index = faiss.read_index(os.fspath(path))
        ivf = faiss.try_extract_index_ivf(index)
        if ivf is not None:
            _tune_quantizer(faiss, ivf)
        return cls(dim, index)

    def nbytes(self) -> int:
        """Memory the index holds (codes, ids, centroids and graph), measured by serialising it."""
        return int(import_faiss().serialize_index(self.index).nbytes)


def faiss_ivf(index):
    """The IVF inside ``index`` (through an id map or a wrapper), or None."""
    return import_faiss().try_extract_index_ivf(index)


def quantizer_width(nprobe: int) -> int:
    """efSearch of an HNSW coarse quantizer asked for ``nprobe`` lists: at least as wide as the
    lists it must return, with room to find the right ones."""
    return max(64, 2 * int(nprobe))


def _tune_quantizer(faiss, ivf) -> None:
    """Set an HNSW coarse quantizer's width for the index's own nprobe."""
    hnsw = faiss.downcast_index(ivf.quantizer)
    if isinstance(hnsw, faiss.IndexHNSW):
        hnsw.hnsw.efSearch = quantizer_width(ivf.nprobe)


def _ivf_params(ivf, nprobe: int, ef_search: int):
    """Per-search parameters probing ``nprobe`` lists (an HNSW quantizer searched ``ef_search``
    wide), leaving the index's own settings untouched for concurrent searches."""
    faiss = import_faiss()
    params = faiss.SearchParametersIVF()
    params.nprobe = int(nprobe)
    if isinstance(faiss.downcast_index(ivf.quantizer), faiss.IndexHNSW):
        qp = faiss.SearchParametersHNSW()
        qp.efSearch = int(ef_search)
        params.quantizer_params = qp
        params._keep = qp  # the SWIG object must outlive the search
    return params


def index_file_name(encoder_id: int, gen: int) -> str:
    return f"vectors-e{encoder_id}-g{gen:012d}.faiss"


def list_index_files(directory: Path, encoder_id: int) -> list[tuple[int, Path]]:
    """(generation, path) of this encoder's index files, newest first."""
    out = []
    if directory.is_dir():
        for entry in directory.iterdir():
            m = _FILE_RE.match(entry.name)
            if m and int(m.group(1)) == encoder_id:
                out.append((int(m.group(2)), entry))
    return sorted(out, reverse=True)
