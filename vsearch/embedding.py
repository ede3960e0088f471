"""Turning decoded segments into vectors in encoder-sized batches, and ``vsearch embed``.

The batcher is shared by indexing and by ``embed``: segments from any number of files are
stacked into one batch, so small files do not mean small batches.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import ConfigError
from .video.discover import display_path
from .video.transforms import to_pixels
from .video.workers import DecodeJob, DecodePool


def default_batch_size(device: str) -> int:
    """Segments per encoder call. GPU: large enough to fill it; CPU: small (latency, memory)."""
    return 32 if str(device).startswith("cuda") else 8


def default_workers() -> int:
    return max(1, min(4, (os.cpu_count() or 2)))


@dataclass
class StageTimes:
    """Seconds spent per stage, as clip-retrieval's runner logs them: where did the time go?"""

    decode_wait: float = 0.0
    preprocess: float = 0.0
    encode: float = 0.0
    write: float = 0.0

    def as_dict(self) -> dict:
        return {k: round(v, 3) for k, v in self.__dict__.items()}


class SegmentBatcher:
    """Collects ``(key, frames)`` and returns ``(key, vector)`` pairs a batch at a time."""

    def __init__(self, encoder, batch_size: int, times: StageTimes | None = None):
        self.encoder = encoder
        self.batch_size = max(1, int(batch_size))
        self.times = times or StageTimes()
        self._keys: list[Hashable] = []
        self._frames: list[np.ndarray] = []

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, key: Hashable, frames: np.ndarray) -> list[tuple[Hashable, np.ndarray]]:
        self._keys.append(key)
        self._frames.append(frames)
        return self.flush() if len(self._keys) >= self.batch_size else []

    def discard(self, predicate: Callable[[Hashable], bool]) -> None:
        keep = [(k, f) for k, f in zip(self._keys, self._frames) if not predicate(k)]
        self._keys = [k for k, _ in keep]
        self._frames = [f for _, f in keep]

    def flush(self) -> list[tuple[Hashable, np.ndarray]]:
        if not self._keys:
            return []
        keys, frames = self._keys, self._frames
        self._keys, self._frames = [], []
        t0 = time.perf_counter()
        pixels = to_pixels(np.stack(frames), self.encoder.spec.pixels, device=self.encoder.device)
        t1 = time.perf_counter()
        vectors = self.encoder.encode_videos(pixels).numpy()
        t2 = time.perf_counter()
        self.times.preprocess += t1 - t0
        self.times.encode += t2 - t1
        return list(zip(keys, vectors))


@dataclass
class EmbedResult:
    vectors: np.ndarray
    rows: list[dict]
    failed: list[tuple[str, str]] = field(default_factory=list)


def embed_videos(
    encoder,
    paths: Sequence[str | os.PathLike[str]],
    *,
    segments: bool = False,
    segment_seconds: float = 10.0,
    min_tail_seconds: float = 1.0,
    workers: int | None = None,
    batch_size: int | None = None,
    decode_timeout: float | None = 120.0,
    on_progress: Callable[[int], None] | None = None,
) -> EmbedResult:
    """Embed whole videos (one row each, sampled as one segment) or every segment of them.

    Rows come back in input order (segments in time order within a video). A file that fails
    is reported in ``failed`` and has no rows.
    """
    spec = encoder.spec
    seg_len = segment_seconds if segments else math.inf
    jobs = [
        DecodeJob(i, os.fspath(p), spec.frames, spec.pixels.image_size, spec.pixels.resize, seg_len, min_tail_seconds)
        for i, p in enumerate(paths)
    ]
    pool = DecodePool(default_workers() if workers is None else workers, timeout=decode_timeout)
    batcher = SegmentBatcher(encoder, batch_size or default_batch_size(encoder.device.type))
    plans: dict[int, dict[int, tuple]] = {}
    results: dict[tuple[int, int], np.ndarray] = {}
    failed: dict[int, str] = {}
    for msg in pool.messages(jobs):
        kind, job_id = msg[0], msg[1]
        if kind == "info":
            plans[job_id] = {p[0]: p for p in msg[3]}
        elif kind == "segment":
            for key, vec in batcher.add((job_id, msg[2]), msg[4]):
                results[key] = vec
        elif kind == "error":
            failed[job_id] = msg[2]
            batcher.discard(lambda k, j=job_id: k[0] == j)
        elif kind == "done" and on_progress:
            on_progress(1)
    for key, vec in batcher.flush():
        results[key] = vec
    rows, vectors = [], []
    for job in jobs:
        if job.id in failed:
            continue
        for seg_idx, plan in sorted(plans.get(job.id, {}).items()):
            vec = results.get((job.id, seg_idx))
            if vec is None:
                continue
            rows.append({"path": job.path, "segment": seg_idx, "start": round(plan[3], 3), "end": round(plan[4], 3)})
            vectors.append(vec)
    dim = spec.dim
    arr = np.stack(vectors).astype(np.float32) if vectors else np.zeros((0, dim), np.float32)
    return EmbedResult(arr, rows, [(jobs[j].path, r) for j, r in sorted(failed.items())])


def embed_texts(encoder, texts: Sequence[str]) -> EmbedResult:
    if any(not t.strip() for t in texts):
        raise ConfigError("empty texts cannot be embedded")
    vecs = encoder.encode_texts(list(texts)).numpy().astype(np.float32)
    return EmbedResult(vecs, [{"text": t} for t in texts])


def write_embeddings(result: EmbedResult, out: str | os.PathLike[str], encoder) -> tuple[Path, Path]:
    """``OUT.npy`` (float32, L2-normalised rows) and ``OUT.json`` naming each row and the model."""
    out = Path(out)
    if out.suffix != ".npy":
        out = out.with_suffix(".npy")
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, result.vectors)
    sidecar = out.with_suffix(".json")
    meta = {
        "model": encoder.name,
        "fingerprint": encoder.fingerprint,
        "dim": int(result.vectors.shape[1]) if result.vectors.ndim == 2 else encoder.spec.dim,
        "normalized": True,
        "rows": [{**r, **({"path": display_path(r["path"])} if "path" in r else {})} for r in result.rows],
        "failed": [{"path": display_path(p), "reason": r} for p, r in result.failed],
    }
    sidecar.write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return out, sidecar
