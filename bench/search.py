"""Search at scale through vsearch's own store: exact search beside the automatic index policy.

    python bench/search.py                           # 1,000,000 x 512, both generated vector sets
    python bench/search.py --n 250000 --sets clustered
    python bench/search.py --vectors V.npy --query-vectors Q.npy --json
    python bench/search.py --n 1000000 --growth      # also: add 10,000 segments to the built store

Vectors are loaded into a real store (the store's schema: videos of 10 segments, float16
vectors in SQLite), then ``Store.rebuild_index`` builds each index kind measured: ``flat``
(exact, the baseline) and ``auto`` (what the policy picks for that size). For each, measured
side by side in one run, single queries, k = 10:

- ``build_s``: ``rebuild_index`` end to end (reading the vectors from SQLite, training, adding,
  tuning nprobe on held-out queries, writing the file);
- ``p50_ms`` / ``p99_ms``: vsearch's search path after query encoding (FAISS, the exact re-rank
  where codes are lossy, SQLite rows, best segment per video), interleaved with
- ``raw_p50_ms``: FAISS alone on the same index;
- ``recall_at_10``: segment-level top 10 of the vsearch path against the exact top 10 over the
  same stored vectors, on the given (or held-out generated) queries;
- ``bytes``: the serialised index (codes, ids, centroids, graph).

Generated sets (``--sets``): ``latent`` (normalize(Z W + 0.3 noise), Z a 48-d Gaussian: no
cluster structure, a worst case for every ANN index) and ``clustered`` (3,000 clusters of
Zipf-like sizes, each spread over a 24-d subspace plus noise: closer to real CLIP collections).
Queries for generated sets are drawn from the same process and never stored.

Each finished row is appended to ``--out`` (JSON lines) as soon as it is measured. With
``--json`` the last line of stdout is ``{"flat": {...}, "auto": {...}}`` (per set, under the
set's name, when several sets run).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PER_VIDEO = 10


def latent(n: int, dim: int, seed: int = 0, chunk: int = 100_000) -> np.ndarray:
    """normalize(Z @ W + 0.3 noise), Z ~ N(0, I_48): smooth, isotropic, no clusters."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(48, dim)).astype(np.float32)
    out = np.empty((n, dim), np.float32)
    for i in range(0, n, chunk):
        m = min(chunk, n - i)
        z = rng.normal(size=(m, 48)).astype(np.float32) @ w + 0.3 * rng.normal(size=(m, dim)).astype(np.float32)
        out[i : i + m] = z / np.linalg.norm(z, axis=1, keepdims=True)
    return out


def clustered(n: int, dim: int, seed: int = 0, topics: int = 3000, per_video: int = PER_VIDEO, chunk: int = 100_000) -> np.ndarray:
    """A video collection's shape: topics of Zipf-like sizes, videos inside a topic, segments
    inside a video.

    3,000 topic centres (unit vectors); each video sits at its topic's centre plus an offset in
    the topic's own 32-d subspace (spread 0.6); its ``per_video`` consecutive segments sit
    around the video plus a 16-d offset (spread 0.25) and a little full-dimensional noise.
    Rows come in whole videos, as the store holds them; queries drawn by the same process are
    segments of new videos, never stored ones.
    """
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(topics, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    bases = rng.normal(size=(topics, 32, dim)).astype(np.float32) / np.sqrt(dim)
    weights = 1.0 / np.arange(1, topics + 1) ** 0.8
    weights /= weights.sum()
    out = np.empty((n, dim), np.float32)
    for i in range(0, n, chunk):
        m = min(chunk, n - i)
        videos = -(-m // per_video)
        t = rng.choice(topics, size=videos, p=weights)
        video = centres[t] + 0.6 / np.sqrt(32) * np.einsum("vs,vsd->vd", rng.normal(size=(videos, 32)).astype(np.float32), bases[t])
        seg_t = np.repeat(t, per_video)[:m]
        x = np.repeat(video, per_video, axis=0)[:m]
        x += 0.25 / np.sqrt(16) * np.einsum("ms,msd->md", rng.normal(size=(m, 16)).astype(np.float32), bases[seg_t, :16])
        x += 0.05 / np.sqrt(dim) * rng.normal(size=(m, dim)).astype(np.float32)
        out[i : i + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


GENERATORS = {"latent": latent, "clustered": clustered}


class BenchEncoder:
    """Stands for the model that made the vectors: the store records its name and dimension."""

    fingerprint, source = "bench" * 6, None

    def __init__(self, name: str, dim: int):
        self.name = name
        self._spec = {"family": "bench", "dim": dim}

    @property
    def spec(self):
        spec = self._spec

        class Spec:
            @staticmethod
            def as_dict():
                return spec

        return Spec


def fill_store(root: Path, vectors: np.ndarray, name: str, per_video: int = PER_VIDEO) -> None:
    """Bulk-write videos, segments and float16 vectors through the store's schema (one encoder)."""
    from sqlalchemy import insert

    from vsearch.store import Store
    from vsearch.store.rows import VECTOR_DTYPE
    from vsearch.store.schema import Embedding, Segment, Video

    st = Store.open(root)
    rec = st.bind_encoder(BenchEncoder(name, vectors.shape[1]))
    n = len(vectors)
    videos = -(-n // per_video)
    step = 2000
    for v0 in range(0, videos, step):
        v1 = min(videos, v0 + step)
        with st.Session.begin() as s:
            gen = st._bump_generation(s)
            s.execute(insert(Video), [
                {"id": v + 1, "path": f"/bench/video_{v:07d}.mp4", "size": 1, "mtime_ns": 1, "content_hash": f"{v}",
                 "duration": 10.0 * per_video, "fps": 25.0, "num_frames": 250 * per_video, "width": 640, "height": 360,
                 "recorded_at": 1.6e9 + v, "recorded_from": "mtime"}
                for v in range(v0, v1)
            ])  # fmt: skip
            rows = range(v0 * per_video, min(n, v1 * per_video))
            s.execute(insert(Segment), [
                {"id": r + 1, "video_id": r // per_video + 1, "idx": r % per_video, "start_s": 10.0 * (r % per_video),
                 "end_s": 10.0 * (r % per_video + 1), "start_frame": 250 * (r % per_video), "end_frame": 250 * (r % per_video + 1)}
                for r in rows
            ])  # fmt: skip
            s.execute(insert(Embedding), [
                {"segment_id": r + 1, "encoder_id": rec.id, "gen": gen, "frame_indices": [], "vector": vectors[r].astype(VECTOR_DTYPE).tobytes()}
                for r in rows
            ])  # fmt: skip
    st.close()


def paired_latency(fns, queries: np.ndarray) -> list[tuple[float, float]]:
    """p50/p99 ms of each function, timed in interleaved pairs per query so that load drifting
    on a shared machine hits all of them alike (the ratio is what holds)."""
    for fn in fns:  # warm-up
        for q in queries[:3]:
            fn(q[None])
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


def exact_top(stored: np.ndarray, queries: np.ndarray, k: int = 10) -> np.ndarray:
    """Segment ids (1-based, as stored) of the exact top k over the float16-rounded vectors."""
    import faiss

    x = stored.astype(np.float16).astype(np.float32)
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    return index.search(np.ascontiguousarray(queries, np.float32), k)[1] + 1


def measure(st, kind: str, queries: np.ndarray, truth: np.ndarray) -> dict:
    from vsearch.search import rank_segments

    t0 = time.perf_counter()
    info = st.rebuild_index(kind)
    build = time.perf_counter() - t0
    index = st.vector_index()
    raw = index.index
    (raw_p50, _raw_p99), (p50, p99) = paired_latency(
        [lambda q: raw.search(q, 10), lambda q: rank_segments(st, index, q, 10)], queries
    )
    got = st.nearest(index, queries, 10).ids
    recall = float(np.mean([len(set(a.tolist()) & set(b.tolist())) / 10 for a, b in zip(got, truth)]))
    return {
        "kind": info["kind"],
        "build_s": round(build, 1),
        "p50_ms": round(p50, 3),
        "p99_ms": round(p99, 3),
        "raw_p50_ms": round(raw_p50, 3),
        "recall_at_10": round(recall, 4),
        "bytes": int(index.nbytes()),
        "params": {k: v for k, v in info.items() if k in ("nlist", "nprobe", "recall_at_10", "trained_on", "pq_m")},
    }


def grow(st, vectors: np.ndarray) -> dict:
    """Add ``vectors`` as new videos through ``Store.commit`` (the indexer's write path), then the
    index policy and the index file save, as ``vsearch index`` does after a run."""
    from vsearch.store import SegmentWrite, VideoWrite

    rec = st.encoder()
    info = {"duration": 10.0 * PER_VIDEO, "fps": 25.0, "num_frames": 250 * PER_VIDEO, "width": 640, "height": 360}
    videos = [
        VideoWrite(
            f"/bench/grown_{v:06d}.mp4", 1, 1, f"g{v}", info,
            [SegmentWrite(j, 10.0 * j, 10.0 * (j + 1), 250 * j, 250 * (j + 1), [], vectors[v * PER_VIDEO + j]) for j in range(PER_VIDEO)],
        )
        for v in range(len(vectors) // PER_VIDEO)
    ]  # fmt: skip
    before = st.status()["index"]["params"].get("trained_on")
    t0 = time.perf_counter()
    for i in range(0, len(videos), 100):
        st.commit(rec.id, videos[i : i + 100])
    t_commit = time.perf_counter() - t0
    change = st.apply_index_policy()
    st.save_index()
    total = time.perf_counter() - t0
    after = st.status()["index"]["params"].get("trained_on")
    return {
        "added": len(vectors),
        "commit_s": round(t_commit, 1),
        "total_s": round(total, 1),
        "retrained": before != after,
        "policy": None if change is None else change.get("drift", [{}])[-1],
    }


def run_set(name: str, stored: np.ndarray, queries: np.ndarray, args, out_file: Path | None) -> dict:
    from vsearch.store import Store

    work = Path(tempfile.mkdtemp(prefix="vsearch-search-bench-", dir=args.tmp))
    try:
        t0 = time.perf_counter()
        fill_store(work / "store", stored, name)
        print(f"[{name}] wrote {len(stored):,} x {stored.shape[1]} vectors into the store in {time.perf_counter() - t0:.0f} s", flush=True)
        truth = exact_top(stored, queries)
        st = Store.open(work / "store")
        rows = {}
        for label, kind in (("flat", "flat"), ("auto", "auto")):
            row = measure(st, kind, queries, truth)
            rows[label] = row
            print(f"[{name}] {label}: {json.dumps(row)}", flush=True)
            if out_file:
                with open(out_file, "a") as f:
                    f.write(json.dumps({"set": name, "n": len(stored), "index": label, **row}) + "\n")
        if args.growth:
            extra = GENERATORS.get(name, clustered)(args.growth_n, stored.shape[1], seed=args.seed + 7) if name in GENERATORS else None
            if extra is not None:
                row = grow(st, extra)
                rows["growth"] = row
                print(f"[{name}] growth: {json.dumps(row)}", flush=True)
                if out_file:
                    with open(out_file, "a") as f:
                        f.write(json.dumps({"set": name, "n": len(stored), "index": "growth", **row}) + "\n")
        st.close()
        return rows
    finally:
        shutil.rmtree(work, ignore_errors=True)


def print_table(results: dict, n: int, nq: int) -> None:
    print(f"\n{n:,} vectors, k=10, {nq} single queries, {os.cpu_count()} cores")
    print(f"{'set':<11}{'index':<9}{'kind':<9}{'build s':>9}{'p50 ms':>9}{'p99 ms':>9}{'raw p50':>9}{'recall@10':>11}{'MB':>8}")
    for name, rows in results.items():
        for label in ("flat", "auto"):
            r = rows[label]
            print(
                f"{name:<11}{label:<9}{r['kind']:<9}{r['build_s']:>9.1f}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}"
                f"{r['raw_p50_ms']:>9.2f}{r['recall_at_10']:>11.3f}{r['bytes'] / 1e6:>8.0f}"
            )
        f, a = rows["flat"], rows["auto"]
        print(f"{name:<11}ratio    flat/auto p50 through vsearch: {f['p50_ms'] / a['p50_ms']:.1f}x faster")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1_000_000, help="generated vectors to store")
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--queries", type=int, default=200, help="generated held-out queries")
    p.add_argument("--sets", default="clustered,latent", help="generated sets, comma-separated: clustered, latent")
    p.add_argument("--vectors", type=Path, help="a float32 (n, d) .npy of unit vectors to store instead")
    p.add_argument("--query-vectors", type=Path, help="a float32 (q, d) .npy of unit query vectors (with --vectors)")
    p.add_argument("--growth", action="store_true", help="then add --growth-n new segments to the built store")
    p.add_argument("--growth-n", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="append each finished row here (JSON lines)")
    p.add_argument("--tmp", default=None, help="folder for the temporary store (default: the system's)")
    p.add_argument("--json", action="store_true", help="the last line of stdout is the results as one JSON object")
    args = p.parse_args()
    os.environ.setdefault("VSEARCH_HOME", tempfile.mkdtemp(prefix="vsearch-bench-home-"))

    results = {}
    if args.vectors is not None:
        if args.query_vectors is None:
            p.error("--vectors needs --query-vectors (the queries to measure with)")
        stored = np.load(args.vectors, mmap_mode="r")
        queries = np.load(args.query_vectors)
        for what, arr in (("--vectors", stored), ("--query-vectors", queries)):
            if arr.ndim != 2 or arr.dtype != np.float32:
                sys.exit(f"bench/search.py: {what} must be a float32 (n, d) array, got {arr.dtype} {arr.shape}")
        if stored.shape[1] != queries.shape[1]:
            sys.exit(f"bench/search.py: --vectors are {stored.shape[1]}-d but --query-vectors {queries.shape[1]}-d")
        results[args.vectors.stem] = run_set(args.vectors.stem, np.asarray(stored), queries.astype(np.float32), args, args.out)
        n = len(stored)
    else:
        n = args.n
        for name in [s.strip() for s in args.sets.split(",") if s.strip()]:
            if name not in GENERATORS:
                p.error(f"unknown set {name!r} (clustered, latent)")
            allv = GENERATORS[name](args.n + args.queries, args.dim, seed=args.seed)
            stored, queries = allv[: args.n], np.ascontiguousarray(allv[args.n :])
            results[name] = run_set(name, stored, queries, args, args.out)
            del allv, stored
    print_table(results, n, args.queries if args.vectors is None else len(queries))
    if args.json:
        print(json.dumps(next(iter(results.values())) if len(results) == 1 else results))


if __name__ == "__main__":
    main()
