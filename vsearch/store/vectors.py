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
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

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


#: Up to this many vectors the automatic policy keeps exact search (about 50 ms per query at
#: 250k x 512 on 2 cores; 0.2 s at 1M). Above it: IVF, trained and tuned for recall.
FLAT_MAX = 250_000
#: The automatic policy tunes IVF's nprobe until recall@10 against exact search reaches this.
TARGET_RECALL = 0.95
KINDS = ("flat", "ivf", "ivf-pq")


@dataclass(frozen=True)
class IndexPlan:
    """What to build: a pure function of (size, dim, requested kind), as autofaiss does."""

    kind: str
    nlist: int = 0
    pq_m: int = 0
    pq_bits: int = 8

    def as_params(self) -> dict:
        return {k: v for k, v in (("nlist", self.nlist), ("pq_m", self.pq_m), ("pq_bits", self.pq_bits if self.pq_m else 0)) if v}


def choose_index(n: int, dim: int, kind: str = "auto", nlist: int | None = None, flat_max: int = FLAT_MAX) -> IndexPlan:
    """``auto``: exact up to ``flat_max`` vectors, IVF above. nlist ≈ 4·√n as a power of two.

    IVF-PQ (``kind="ivf-pq"``) stores 8 dimensions per byte-sized code (64 bytes for 512-d):
    a 30x smaller index for a recall cost that ``reindex`` measures and records.
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
    return IndexPlan("ivf", lists)


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
        return {"IndexIVFFlat": "ivf", "IndexIVFPQ": "ivf-pq"}.get(name, "flat")

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
            self._gpu = None

    @classmethod
    def build(cls, plan: IndexPlan, dim: int, training: np.ndarray | None = None, seed: int = 0) -> VectorIndex:
        """An empty index of ``plan``'s kind; IVF kinds are trained on ``training`` first."""
        faiss = import_faiss()
        if plan.kind == "flat":
            return cls(dim)
        if training is None or len(training) < plan.nlist:
            raise StoreError(f"an {plan.kind} index with {plan.nlist} lists needs at least {plan.nlist} training vectors")
        quantizer = faiss.IndexFlatIP(dim)
        if plan.kind == "ivf":
            index = faiss.IndexIVFFlat(quantizer, dim, plan.nlist, faiss.METRIC_INNER_PRODUCT)
        else:
            index = faiss.IndexIVFPQ(quantizer, dim, plan.nlist, plan.pq_m, plan.pq_bits, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = seed
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
        self.index.add_with_ids(as_f32(vectors, self.dim), np.ascontiguousarray(ids, dtype=np.int64))
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

    def search(self, queries: np.ndarray, k: int) -> SearchResult:
        q = as_f32(queries, self.dim)
        k = max(1, min(int(k), max(self.ntotal, 1)))
        scores, ids = self._search_index().search(q, k)
        scores = np.where(ids < 0, -np.inf, scores).astype(np.float32)
        return SearchResult(scores, ids)

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
        faiss = import_faiss()
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        os.close(fd)
        try:
            faiss.write_index(self.index, tmp)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        _fsync_dir(path.parent)

    @classmethod
    def read(cls, path: Path, dim: int) -> VectorIndex:
        faiss = import_faiss()
        index = faiss.read_index(os.fspath(path))
        return cls(dim, index)


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


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def recall_meter(index: VectorIndex, ids: np.ndarray, vectors: np.ndarray, queries: int = 500, k: int = 10, seed: int = 0):
    """A function ``nprobe -> recall@k`` of ``index`` against exact search over what it holds.

    Queries are stored vectors picked at random (real text queries are not available when an
    index is built).
    """
    faiss = import_faiss()
    x = as_f32(vectors, index.dim)
    q = x[np.random.default_rng(seed).choice(len(x), size=min(queries, len(x)), replace=False)]
    exact = faiss.IndexFlatIP(index.dim)
    exact.add(x)
    truth = np.asarray(ids, np.int64)[exact.search(q, k)[1]]

    def recall_at(nprobe: int) -> float:
        index.nprobe = nprobe
        got = index.index.search(q, k)[1]
        return float(np.mean([len(set(a.tolist()) & set(b.tolist())) / k for a, b in zip(got, truth)]))

    return recall_at


def tune_nprobe(index: VectorIndex, ids: np.ndarray, vectors: np.ndarray, target: float = TARGET_RECALL) -> tuple[int, float]:
    """Smallest power-of-two nprobe whose recall@10 against exact search reaches ``target``,
    or where recall stops improving (PQ codes cap it). Returns (nprobe, recall@10)."""
    ivf = import_faiss().try_extract_index_ivf(index.index)
    if ivf is None:
        return 0, 1.0
    recall_at = recall_meter(index, ids, vectors)
    probe, last = 1, (0, -1.0)
    while True:
        recall = recall_at(probe)
        if recall >= target or probe >= ivf.nlist:
            return probe, recall
        if recall - last[1] < 0.002:  # a plateau: more lists would only cost time
            index.nprobe = last[0]
            return last
        last = (probe, recall)
        probe *= 2
