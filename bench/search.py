"""Search at scale: a million 512-d segments through vsearch's own store, exact vs IVF.

    python bench/search.py                  # 1,000,000 x 512 (about 10 min, ~6 GB RAM, 2 cores)
    python bench/search.py --n 100000       # a quicker look

Vectors are random but clustered like embeddings (``normalize(Z @ W + 0.3 noise)``, 48-d latent
Z; uniform random vectors make every ANN index look broken, deps.md §3). They are written into
a real store (videos of 10 segments, float16 vectors in SQLite, the store's schema), then
``Store.rebuild_index`` builds (a) the exact index and (b) IVF with nprobe tuned by the store.

Printed, per index: single-query latency p50/p99, 100-query batch throughput, recall@10 of IVF
against exact on held-out queries, and vsearch's search path (FAISS → SQLite rows → best
segment per video) against raw FAISS on the same index at k=10 (goal: overhead <= 1.3x).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def clustered(n: int, dim: int, latent: int = 48, seed: int = 0, chunk: int = 100_000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(latent, dim)).astype(np.float32)
    out = np.empty((n, dim), np.float32)
    for i in range(0, n, chunk):
        m = min(chunk, n - i)
        z = rng.normal(size=(m, latent)).astype(np.float32) @ w + 0.3 * rng.normal(size=(m, dim)).astype(np.float32)
        out[i : i + m] = z / np.linalg.norm(z, axis=1, keepdims=True)
    return out


def fill_store(root: Path, vectors: np.ndarray, per_video: int = 10) -> None:
    """Bulk-write videos, segments and float16 vectors through the store's schema (one encoder)."""
    from sqlalchemy import insert

    from vsearch.store import Store
    from vsearch.store.schema import Embedding, Segment, Video
    from vsearch.store.store import VECTOR_DTYPE

    class Enc:
        fingerprint, name, source = "bench" * 6, "bench-clustered", None

        class spec:  # noqa: N801
            @staticmethod
            def as_dict():
                return {"family": "bench", "dim": vectors.shape[1]}

    st = Store.open(root)
    rec = st.bind_encoder(Enc())
    n = len(vectors)
    videos = n // per_video
    step = 2000
    for v0 in range(0, videos, step):
        v1 = min(videos, v0 + step)
        with st.Session.begin() as s:
            gen = st._bump_generation(s)
            s.execute(insert(Video), [
                {"id": v + 1, "path": f"/bench/video_{v:07d}.mp4", "size": 1, "mtime_ns": 1, "content_hash": f"{v}", "duration": 10.0 * per_video,
                 "fps": 25.0, "num_frames": 250 * per_video, "width": 640, "height": 360}
                for v in range(v0, v1)
            ])  # fmt: skip
            s.execute(insert(Segment), [
                {"id": v * per_video + j + 1, "video_id": v + 1, "idx": j, "start_s": 10.0 * j, "end_s": 10.0 * (j + 1),
                 "start_frame": 250 * j, "end_frame": 250 * (j + 1)}
                for v in range(v0, v1) for j in range(per_video)
            ])  # fmt: skip
            rows = range(v0 * per_video, v1 * per_video)
            s.execute(insert(Embedding), [
                {"segment_id": r + 1, "encoder_id": rec.id, "gen": gen, "frame_indices": [], "vector": vectors[r].astype(VECTOR_DTYPE).tobytes()}
                for r in rows
            ])  # fmt: skip
    st.close()


def paired_latency(fns, queries: np.ndarray) -> list[tuple[float, float]]:
    """p50/p99 ms of each function, timed in interleaved pairs per query so that load drifting
    on a shared machine hits all of them alike (the ratio is what holds)."""
    for fn in fns:  # warm-up
        fn(queries[:1])
    times = [[] for _ in fns]
    for q in queries:
        for t, fn in zip(times, fns):
            t0 = time.perf_counter()
            fn(q[None])
            t.append((time.perf_counter() - t0) * 1000)
    out = []
    for t in times:
        t.sort()
        out.append((float(np.median(t)), float(t[int(0.99 * (len(t) - 1))])))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--queries", type=int, default=200)
    args = p.parse_args()

    from vsearch.search import search_vector
    from vsearch.store import Store

    work = Path(tempfile.mkdtemp(prefix="vsearch-search-bench-"))
    os.environ["VSEARCH_HOME"] = str(work / "home")
    try:
        t0 = time.perf_counter()
        vectors = clustered(args.n + args.queries, args.dim)
        queries = vectors[args.n :]  # held out: never stored
        stored = vectors[: args.n]
        fill_store(work / "store", stored)
        print(f"wrote {args.n:,} x {args.dim} vectors into the store in {time.perf_counter() - t0:.0f} s", flush=True)
        del vectors
        st = Store.open(work / "store")
        results = {}
        exact_top = None
        for kind in ("flat", "ivf"):
            t0 = time.perf_counter()
            info = st.rebuild_index(kind)
            build = time.perf_counter() - t0
            index = st.vector_index()
            raw = index.index
            lat_raw, lat_vs = paired_latency(
                [lambda q, raw=raw: raw.search(q, 10), lambda q, index=index: search_vector(st, index, q, 10)], queries
            )
            t1 = time.perf_counter()
            raw.search(queries[:100], 10)
            batch = time.perf_counter() - t1
            top = raw.search(queries, 10)[1]
            if kind == "flat":
                exact_top = top
            recall = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(top, exact_top)]))
            results[kind] = (info, build, lat_raw, lat_vs, batch, recall)
            print(f"{kind}: built in {build:.1f} s ({info})", flush=True)
        print(f"\n{args.n:,} x {args.dim} float32, k=10, {len(queries)} held-out queries, {os.cpu_count()} cores")
        print(
            f"{'index':<8}{'build s':>9}{'p50 ms':>9}{'p99 ms':>9}{'100-batch ms':>14}{'recall@10':>11}{'vsearch p50':>13}{'overhead':>10}"
        )
        for kind, (_info, build, lat_raw, lat_vs, batch, recall) in results.items():
            print(
                f"{kind:<8}{build:>9.1f}{lat_raw[0]:>9.2f}{lat_raw[1]:>9.2f}{batch * 1000:>14.1f}{recall:>11.3f}"
                f"{lat_vs[0]:>13.2f}{lat_vs[0] / lat_raw[0]:>9.2f}x"
            )
        print("vsearch p50: FAISS search + SQLite rows + best segment per video (query text encoding excluded)")
        st.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
