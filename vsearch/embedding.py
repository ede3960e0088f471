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
import torch

from .atomic import atomic_write, atomic_write_text
from .errors import ConfigError
from .video.discover import display_path
from .video.transforms import to_pixels
from .video.workers import DecodeJob, DecodePool


def default_batch_size(device: str, spec=None) -> int:
    """Segments per encoder call. CPU: 8 (latency, memory). CUDA: from free memory: half of it,
    at roughly 64x a segment's input size per segment (inputs, activations and autocast copies),
    between 8 and 256. A heuristic, not yet measured on a GPU (see README)."""
    if not str(device).startswith("cuda"):
        return 8
    if spec is None:
        return 32
    free, _total = torch.cuda.mem_get_info(torch.device(device))
    per_segment = spec.frames * 3 * spec.pixels.image_size**2 * 4 * 64
    return int(min(256, max(8, (free // 2) // per_segment)))


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
        batch = torch.from_numpy(np.stack(frames))
        if self.encoder.device.type == "cuda":
            batch = batch.pin_memory()  # page-locked: the copy to the GPU runs asynchronously
        pixels = to_pixels(batch, self.encoder.spec.pixels, device=self.encoder.device)
        t1 = time.perf_counter()
        vectors = self.encoder.encode_videos(pixels).numpy()
        t2 = time.perf_counter()
        self.times.preprocess += t1 - t0
        self.times.encode += t2 - t1
        return list(zip(keys, vectors))


@dataclass
class EncodedVideo:
    """One decoded and encoded file: its probe info, segment plans and a vector per good segment."""

    job_id: int
    info: dict | None = None
    plans: dict[int, tuple] = field(default_factory=dict)  # seg -> (seg, start_frame, end_frame, start_s, end_s)
    frame_idx: dict[int, list[int]] = field(default_factory=dict)
    vectors: dict[int, np.ndarray] = field(default_factory=dict)
    seg_errors: list[tuple[int, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: seg -> its thumbnail as (jpeg, width, height) from the worker, or the middle sampled frame
    #: (kept only when thumbnails are wanted).
    thumbs: dict[int, np.ndarray | tuple[bytes, int, int]] = field(default_factory=dict)
    decoded: bool = False
    _waiting: set[int] = field(default_factory=set)

    @property
    def complete(self) -> bool:
        return self.decoded and not self._waiting


def encode_stream(
    messages, batcher: SegmentBatcher, times: StageTimes | None = None, on_message=None, keep_thumbnails: bool = False
):
    """Turn decode-pool messages into finished videos, batching segments across files.

    Yields ``("video", job_id, EncodedVideo)`` once every segment of a file has its vector, and
    ``("error", job_id, reason)`` for files that failed. ``on_message(msg)`` sees every message
    first (progress, stop checks). Also yields ``("segments", job_id, n)`` when a file's plan is
    known, and ``("vector", job_id, seg)`` per embedded segment, for progress displays. With
    ``keep_thumbnails`` each segment's middle sampled frame is kept for its thumbnail.
    """
    pending: dict[int, EncodedVideo] = {}

    def deliver(pairs):
        for (job_id, seg), vec in pairs:
            st = pending.get(job_id)
            if st is None:
                continue
            st.vectors[seg] = vec
            st._waiting.discard(seg)
            yield ("vector", job_id, seg)
            if st.complete:
                yield ("video", job_id, pending.pop(job_id))

    stream = iter(messages)
    while True:
        t0 = time.perf_counter()
        msg = next(stream, None)
        if times is not None:
            times.decode_wait += time.perf_counter() - t0
        if msg is None:
            break
        if on_message is not None:
            on_message(msg)
        kind, job_id = msg[0], msg[1]
        st = pending.setdefault(job_id, EncodedVideo(job_id)) if kind != "error" else pending.pop(job_id, None)
        if kind == "info":
            st.info = msg[2]
            st.plans = {p[0]: tuple(p) for p in msg[3]}
            yield ("segments", job_id, len(st.plans))
        elif kind == "plans":  # a streamed job's next plans (DecodeJob.stream_plans)
            st.plans.update({p[0]: tuple(p) for p in msg[2]})
            st.info = {**(st.info or {}), **msg[3]}
            yield ("segments", job_id, len(msg[2]))
        elif kind == "segment":
            st.frame_idx[msg[2]] = list(msg[3])
            st._waiting.add(msg[2])
            if keep_thumbnails:  # the worker's (jpeg, w, h) when it made one, else the middle frame
                frames = msg[4]
                made = msg[5] if len(msg) > 5 else None
                st.thumbs[msg[2]] = made if made is not None else frames[len(frames) // 2].copy()
            yield from deliver(batcher.add((job_id, msg[2]), msg[4]))
        elif kind == "segment_error":
            st.seg_errors.append((msg[2], msg[3]))
        elif kind == "note":
            st.notes.append(msg[2])
        elif kind == "done":
            st.decoded = True
            if st.complete:
                yield ("video", job_id, pending.pop(job_id))
        elif kind == "error":
            batcher.discard(lambda k, j=job_id: k[0] == j)
            yield ("error", job_id, msg[2])
    yield from deliver(batcher.flush())


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
    sampling: str = "exact",
    segmenter: str = "fixed",
) -> EmbedResult:
    """Embed whole videos (one row each, sampled as one segment) or every segment of them.

    Rows come back in input order (segments in time order within a video). A file that fails
    is reported in ``failed`` and has no rows. ``sampling``: "exact" (uniform frames, as papers
    sample) or "fast" (nearest keyframes, ``vsearch.video.readplan``). ``segmenter`` (with
    ``segments``): "fixed" windows of ``segment_seconds`` or "shots" (``vsearch.video.segmenting``).
    """
    spec = encoder.spec
    seg_len = segment_seconds if segments else math.inf
    shape = (spec.frames, spec.pixels.image_size, spec.pixels.resize)
    cut = segmenter if segments else "fixed"
    jobs = [
        DecodeJob(i, os.fspath(p), *shape, seg_len, min_tail_seconds, sampling=sampling, segmenter=cut, stream_plans=True)
        for i, p in enumerate(paths)
    ]
    pool = DecodePool(default_workers() if workers is None else workers, timeout=decode_timeout)
    batcher = SegmentBatcher(encoder, batch_size or default_batch_size(str(encoder.device), spec))
    done: dict[int, EncodedVideo] = {}
    failed: dict[int, str] = {}
    for kind, job_id, payload in encode_stream(pool.messages(jobs), batcher):
        if kind == "video":
            done[job_id] = payload
            if on_progress:
                on_progress(1)
        elif kind == "error":
            failed[job_id] = payload
    rows, vectors = [], []
    for job in jobs:
        video = done.get(job.id)
        if video is None:
            continue
        for seg, plan in sorted(video.plans.items()):
            if seg in video.vectors:
                rows.append({"path": job.path, "segment": seg, "start": round(plan[3], 3), "end": round(plan[4], 3)})
                vectors.append(video.vectors[seg])
    arr = np.stack(vectors).astype(np.float32) if vectors else np.zeros((0, spec.dim), np.float32)
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
    atomic_write(out, lambda tmp: save_npy(tmp, result.vectors))
    sidecar = out.with_suffix(".json")
    meta = {
        "model": encoder.name,
        "fingerprint": encoder.fingerprint,
        "dim": int(result.vectors.shape[1]) if result.vectors.ndim == 2 else encoder.spec.dim,
        "normalized": True,
        "rows": [{**r, **({"path": display_path(r["path"])} if "path" in r else {})} for r in result.rows],
        "failed": [{"path": display_path(p), "reason": r} for p, r in result.failed],
    }
    atomic_write_text(sidecar, json.dumps(meta, indent=1, ensure_ascii=False) + "\n")
    return out, sidecar


def save_npy(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """``np.save`` to exactly ``path`` (given a name, np.save appends .npy to one without it)."""
    with open(path, "wb") as f:
        np.save(f, array)
