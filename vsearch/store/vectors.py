"""FAISS behind a small interface: add, remove, search, save, load. No SQL here.

Vectors are unit length, so inner product is cosine similarity. Ids are segment primary keys
(int64) through ``IndexIDMap2``. The CPU index is the master copy: deletes happen on it, and a
GPU copy for search is cloned from it when a GPU is present (no FAISS GPU index supports
``remove_ids``).

Index files are named by generation (``vectors-e<encoder>-g<generation>.faiss``), written to a
temporary name, fsynced and renamed, so a reader sees a whole old file or a whole new one.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import FaissMissing, StoreError

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


@dataclass(frozen=True)
class SearchResult:
    scores: np.ndarray  # (nq, k) float32, -inf where FAISS had fewer than k results
    ids: np.ndarray  # (nq, k) int64, -1 padded


class VectorIndex:
    """A mutable id → vector index with exact inner-product search."""

    kind = "flat"

    def __init__(self, dim: int, index=None):
        faiss = import_faiss()
        self.dim = dim
        self.index = index if index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        if self.index.d != dim:
            raise StoreError(f"index holds {self.index.d}-d vectors, expected {dim}")
        self._gpu = None
        self._gpu_res = None

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
        return faiss.vector_to_array(self.index.id_map).astype(np.int64)

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
